"""``/bots/{bot_id}/links``: mint a signed link to a bot's command (for testing webhooks)."""

from __future__ import annotations

import time

from runtime.api.models import LinkIn, LinkOut
from runtime.api.operation import Call, Routes
from runtime.bots import dispatch
from runtime.errors import LinkError
from runtime.signing.links import make_link
from runtime.web.responses import HttpError

ROUTES = Routes("links", "Signed links to a bot's commands, minted for testing.")


@ROUTES.add(
    "POST",
    "/bots/{bot_id}/links",
    need="write",
    response=LinkOut,
    body=LinkIn,
    status=201,
    errors=(404, 409, 422),
)
async def mint_link(call: Call, body: LinkIn, query: None) -> LinkOut:
    """Mint a signed link that runs one of the bot's commands."""
    bot = call.served()
    if dispatch.find(bot.definition.commands, body.command) is None:
        raise HttpError(404, f"the bot has no command {body.command!r}", code="not_found")
    try:
        link = make_link(
            body.command,
            user_id=body.user_id,
            options=body.options,
            params=body.params,
            redirect=body.redirect,
            expires_in=body.expires_in,
            once=body.once,
            now=time.time(),
            allow_http_redirects=bot.definition.config.webhook.allow_http_redirects,
        )
    except LinkError as exc:
        raise HttpError(422, exc.message, code="invalid") from None
    url = call.state.services.mint(bot, link)
    await call.audit("link.mint", body.command, after=body.model_dump(mode="json"))
    return LinkOut(url=url)
