"""``/bots/{bot_id}/try``: run a message, button press or link click through a bot's live
version against the emulated Telegram (:mod:`runtime.web.trial`; the same as ``run.py try``).

Authors of the bot may use it (``need="write"``): a try runs their code in the sandbox pool
with the bot's limits. Its data lives in the try store (``try.sqlite3`` in the data folder)
unless ``real_data`` is set; a try with real data that changed properties is audited.
"""

from __future__ import annotations

from runtime.api.models import TryCallback, TryClick, TryIn, TryMessage, TryOut
from runtime.api.operation import Call, Routes
from runtime.errors import ConfigError, NotFound
from runtime.store import Store
from runtime.web.responses import HttpError
from runtime.web.trial import TrialRequest, open_try_store, run_trial, try_database

ROUTES = Routes("try", "Trying a bot's commands against an emulated Telegram.")


def trial_request(body: TryIn) -> TrialRequest:
    """The emulator's request for a body."""
    given = body.root
    if isinstance(given, TryMessage):
        return TrialRequest(
            text=given.text,
            user_id=given.user_id,
            chat_id=given.chat_id,
            real_data=given.real_data,
        )
    if isinstance(given, TryCallback):
        return TrialRequest(
            callback=given.data,
            user_id=given.user_id,
            chat_id=given.chat_id,
            real_data=given.real_data,
        )
    click: TryClick = given
    return TrialRequest(
        click=click.command,
        params=dict(click.params),
        options=click.options,
        user_id=click.user_id,
        real_data=click.real_data,
    )


@ROUTES.add(
    "POST",
    "/bots/{bot_id}/try",
    need="write",
    response=TryOut,
    body=TryIn,
    errors=(404, 409, 422),
)
async def try_bot(call: Call, body: TryIn, query: None) -> TryOut:
    """Try a message, button press or link click on the bot's live version (emulated Telegram)."""
    state = call.state
    bot = call.served()
    request = trial_request(body)
    settings = call.request.app.ctx.settings
    store: Store = state.store
    if not request.real_data:
        store = await open_try_store(
            try_database(settings.data_dir), synchronous=settings.sqlite_synchronous
        )
    try:
        trial = await run_trial(
            bot,
            request,
            pool=state.pool,
            store=store,
            keys=state.services.keys,
            base_url=state.services.base_url,
            source=f"live version {bot.version}",
        )
    except NotFound as exc:
        raise HttpError(404, str(exc), code="not_found") from None
    except ConfigError as exc:
        raise HttpError(422, str(exc), code="invalid") from None
    finally:
        if store is not state.store:
            await store.close()
    if request.real_data and trial.properties:
        await call.audit(
            "bot.try",
            body.root.kind,
            after=[
                {"scope": c.scope, "name": c.name, "before": c.before, "after": c.after}
                for c in trial.properties
            ],
        )
    return TryOut.model_validate(trial.as_json())
