"""``/bots/{bot_id}/telegram``: the bot's webhook with Telegram, and its webhook secret.

``PUT .../webhook`` does what ``run.py set-webhook`` does, for the version this server serves:
``setWebhook`` with this server's URL, the bot's derived secret and the update kinds its
commands handle (``allowed_updates``), then ``setMyCommands`` with its described commands. Run
it again after a deploy that adds a kind command (``/handle_*``, ``/inline_query``...).
Telegram's refusals answer 502 with Telegram's own description; the bot's token never appears.
"""

from __future__ import annotations

from pydantic import JsonValue

from runtime.api.models import WebhookInfo, WebhookSecretOut, WebhookSet
from runtime.api.operation import Call, Routes
from runtime.errors import ApiError, TelegramError
from runtime.runs.polling import allowed_updates, set_commands
from runtime.runs.registry import LiveBot, derive_secret
from runtime.web.responses import HttpError

ROUTES = Routes("telegram", "A bot's webhook with Telegram, and its webhook secret.")


def _served(call: Call) -> tuple[LiveBot, str]:
    """The bot as this server serves it, and its token; 409 if it serves nothing or has none."""
    bot = call.state.registry.find(call.bot_id)
    if bot is None:
        raise HttpError(409, "the bot serves no version (failed, disabled or new)", code="conflict")
    if bot.token is None:
        raise HttpError(
            409,
            f"the server has no token for this bot: set {bot.definition.config.token_env}",
            code="conflict",
        )
    return bot, bot.token


def _telegram_failed(exc: TelegramError) -> HttpError:
    if isinstance(exc, ApiError):
        return HttpError(502, f"Telegram refused {exc.method}: {exc.code} {exc.description}")
    return HttpError(502, "Telegram could not be reached", code="bad_gateway")


@ROUTES.add(
    "PUT", "/bots/{bot_id}/telegram/webhook", need="write", response=WebhookSet, errors=(409, 502)
)
async def set_webhook(call: Call, body: None, query: None) -> WebhookSet:
    """Register the bot's webhook (URL, secret, allowed_updates) and command menu."""
    bot, token = _served(call)
    telegram = call.state.services.telegram
    url = f"{call.state.services.base_url}/telegram/{bot.id}"
    kinds = allowed_updates(telegram, bot.definition.commands)
    try:
        await telegram.call(
            token,
            "setWebhook",
            {"url": url, "secret_token": bot.webhook_secret, "allowed_updates": kinds},
        )
        menu = await set_commands(telegram, token, bot.definition.commands)
    except TelegramError as exc:
        raise _telegram_failed(exc) from None
    await call.audit("telegram.set_webhook", url, after={"allowed_updates": kinds})
    return WebhookSet(url=url, allowed_updates=kinds, menu_commands=menu)


@ROUTES.add(
    "GET", "/bots/{bot_id}/telegram/webhook", need="read", response=WebhookInfo, errors=(409, 502)
)
async def webhook_info(call: Call, body: None, query: None) -> WebhookInfo:
    """What Telegram says about the bot's webhook (``getWebhookInfo``)."""
    _, token = _served(call)
    try:
        info: JsonValue = await call.state.services.telegram.call(token, "getWebhookInfo", {})
    except TelegramError as exc:
        raise _telegram_failed(exc) from None
    return WebhookInfo(info=info)


@ROUTES.add("GET", "/bots/{bot_id}/telegram/secret", need="write", response=WebhookSecretOut)
async def webhook_secret(call: Call, body: None, query: None) -> WebhookSecretOut:
    """The secret Telegram must send with the bot's updates (admins and its authors; audited)."""
    secret = derive_secret(call.state.live.master_key, "telegram-webhook-secret", call.bot_id)
    await call.audit("telegram.secret_read", call.bot_id)
    return WebhookSecretOut(
        header="X-Telegram-Bot-Api-Secret-Token",
        secret=secret,
        url=f"{call.state.services.base_url}/telegram/{call.bot_id}",
    )
