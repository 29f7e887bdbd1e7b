"""``/bots``: the bots a token may see, with their status as the server runs them."""

from __future__ import annotations

from runtime.api import auth
from runtime.api.models import BotList, BotOut
from runtime.api.operation import Call, Routes
from runtime.runs.registry import LiveBot

ROUTES = Routes("bots", "The bots this server runs, as your token may see them.")


def bot_out(call: Call, bot: LiveBot) -> BotOut:
    """A hosted bot as the API shows it."""
    access = auth.bot_access(call.principal, bot.id) or "read"
    return BotOut(
        id=bot.id,
        status="serving",
        errors=[],
        commands=[command.name for command in bot.definition.commands.commands],
        has_token=bot.token is not None,
        access=access,
    )


@ROUTES.add("GET", "/bots", need="any", response=BotList)
async def list_bots(call: Call, body: None, query: None) -> BotList:
    """List the bots your token may see."""
    visible = auth.visible_bots(call.principal, call.state.registry.ids)
    return BotList(bots=[bot_out(call, call.state.registry.get(bot_id)) for bot_id in visible])


@ROUTES.add("GET", "/bots/{bot_id}", need="read", response=BotOut)
async def get_bot(call: Call, body: None, query: None) -> BotOut:
    """Show one bot."""
    return bot_out(call, call.state.registry.get(call.bot_id))
