"""Which command an update runs: TBL's matching order, first match wins."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.bots.command import Command
from runtime.bots.dispatch import (
    CommandTable,
    Match,
    NameOwners,
    find,
    is_command_text,
    match,
    menu,
    require,
    strip_bot_username,
    update_types,
)
from runtime.telegram.spec import load_spec
from runtime.telegram.update import IncomingUpdate, parse_update
from sandbox import CapabilityError
from tests.support.updates import make_update

GROUP = -1001234567890


def cmd(name: str, *aliases: str, group_only: bool = False) -> Command:
    """A command with a one-line script."""
    return Command(
        name=name, aliases=aliases, group_only=group_only, source="x = 1\n", path=f"{name}.py"
    )


TABLE = CommandTable.build(
    [
        cmd("/start", "/begin", "hi there"),
        cmd("/set"),
        cmd("/set name"),
        cmd("/other", "/set name now"),
        cmd("hello"),
        cmd("/admin", group_only=True),
        cmd("/vote"),
        cmd("/vote all", group_only=True),
        cmd("/handle_callback_query"),
        cmd("/handle_my_chat_member"),
        cmd("/inline_query"),
        cmd("/channel_update"),
        cmd("@"),
        cmd("@@"),
        cmd("!"),
        cmd("*"),
    ]
)


def update(kind: Any = "message", *, text: str | None = None, **options: Any) -> IncomingUpdate:
    """A parsed update of ``kind`` (private chat unless ``chat_id`` says otherwise)."""
    return parse_update(make_update(kind, update_id=1, text=text, **options))


@pytest.mark.parametrize(
    ("incoming", "bot_username", "expected"),
    [
        (update(text="/start"), None, ("/start", "", "name")),
        (update(text="/start  ref42 "), None, ("/start", "ref42", "name")),
        (update(text="/start\nline two"), None, ("/start", "line two", "name")),
        (update(text="/set name Bob"), None, ("/set name", "Bob", "name")),
        (update(text="/set colour red"), None, ("/set", "colour red", "name")),
        (update(text="/settings"), None, ("*", "/settings", "fallback")),
        (update(text="/START Now"), None, ("/start", "Now", "name")),
        (update(text="hello"), None, ("hello", "", "name")),
        (update(text="Hello"), None, ("*", "Hello", "fallback")),
        (update(text="/start@MyBot go"), "mybot", ("/start", "go", "name")),
        (update(text="/start@OtherBot"), "MyBot", ("*", "/start@OtherBot", "fallback")),
        (update(text="/start@OtherBot go"), None, ("/start", "go", "name")),
        (update(text="/set@MyBot name Bob"), "MyBot", ("/set name", "Bob", "name")),
        (update(text="/begin"), None, ("/start", "", "alias")),
        (update(text="/BEGIN x"), None, ("/start", "x", "alias")),
        (update(text="hi there friend"), None, ("/start", "friend", "alias")),
        (update(text="/set name now"), None, ("/set name", "now", "name")),
        (update("callback_query", data="/set name Zed"), None, ("/set name", "Zed", "name")),
        (
            update("callback_query", data="vote:1"),
            None,
            ("/handle_callback_query", "vote:1", "handler"),
        ),
        (update("my_chat_member", chat_id=GROUP), None, ("/handle_my_chat_member", "", "handler")),
        (update("inline_query", text="/start x"), None, ("/inline_query", "/start x", "kind")),
        (update("channel_post", text="news"), None, ("/channel_update", "news", "kind")),
        (update("edited_channel_post", text="news"), None, ("/channel_update", "news", "kind")),
        (update("channel_post", text="/start"), None, ("/start", "", "name")),
        (update(text="/admin", chat_id=GROUP), None, ("/admin", "", "name")),
        (update(text="/admin", chat_id=-5), None, ("/admin", "", "name")),
        (update(text="/admin"), None, ("*", "/admin", "fallback")),
        (update(text="/vote all"), None, ("/vote", "all", "name")),
        (update(text="/vote all", chat_id=GROUP), None, ("/vote all", "", "name")),
        (update(text="@"), None, ("*", "@", "fallback")),
        (update(text="@@ x"), None, ("*", "@@ x", "fallback")),
        (update(text="!"), None, ("*", "!", "fallback")),
        (update(text="*"), None, ("*", "*", "fallback")),
        (update("edited_message", text="what?"), None, ("*", "what?", "fallback")),
        (update("chat_member", chat_id=GROUP), None, None),
    ],
    ids=[
        "exact-name",
        "params-are-stripped",
        "params-after-a-newline",
        "longest-name-first",
        "shorter-name-with-params",
        "name-needs-a-word-boundary",
        "slash-names-ignore-case",
        "plain-name-exact",
        "plain-name-is-case-sensitive",
        "own-bot-username-is-stripped",
        "other-bot-username-is-not",
        "any-username-when-unknown",
        "username-then-longer-name",
        "alias",
        "slash-alias-ignores-case",
        "alias-with-a-space",
        "names-before-longer-aliases",
        "callback-data-like-text",
        "callback-handler",
        "my-chat-member-handler",
        "inline-query-kind-not-text",
        "channel-post-kind",
        "edited-channel-post-kind",
        "channel-post-text-command",
        "group-only-in-supergroup",
        "group-only-in-group",
        "group-only-refused-in-private",
        "group-only-falls-through-to-shorter",
        "group-only-longer-in-group",
        "before-never-by-text",
        "after-never-by-text",
        "on-error-never-by-text",
        "fallback-never-by-name",
        "edited-message-fallback",
        "member-update-without-handler-runs-nothing",
    ],
)
def test_matching_rules(
    incoming: IncomingUpdate, bot_username: str | None, expected: tuple[str, str, str] | None
) -> None:
    """Each row: an update, the bot's username, and the command, params and rule that match."""
    found = match(TABLE, incoming, bot_username=bot_username)
    if expected is None:
        assert found is None
    else:
        assert found is not None
        assert (found.command.name, found.params, found.how) == expected


def test_a_handler_comes_before_the_kind_command() -> None:
    """``/handle_inline_query`` wins over ``/inline_query``."""
    table = CommandTable.build([cmd("/inline_query"), cmd("/handle_inline_query")])
    found = match(table, update("inline_query", text="cats"))
    assert found == Match(table.commands[1], "cats", "handler")


def test_without_a_fallback_an_unmatched_message_runs_nothing() -> None:
    """No ``*`` command: nothing runs."""
    assert match(CommandTable.build([cmd("/start")]), update(text="hello")) is None


def test_inline_queries_do_not_fall_back() -> None:
    """``*`` is for messages and button presses, not inline queries."""
    table = CommandTable.build([cmd("*")])
    assert match(table, update("inline_query", text="x")) is None
    assert match(table, update("callback_query", data="x")) is not None


def test_a_long_message_still_matches_its_command() -> None:
    """Only prefixes as long as the longest name are tried, and long texts still match."""
    found = match(TABLE, update(text="/set name " + "word " * 800))
    assert found is not None
    assert found.command.name == "/set name"
    assert found.params.startswith("word word")


def test_the_special_commands_are_exposed_by_role() -> None:
    """``@``, ``@@``, ``!`` and ``*`` are found by role, not by text."""
    assert TABLE.before is not None and TABLE.before.name == "@"
    assert TABLE.after is not None and TABLE.after.name == "@@"
    assert TABLE.on_error is not None and TABLE.on_error.name == "!"
    assert TABLE.fallback is not None and TABLE.fallback.name == "*"
    empty = CommandTable.build([])
    assert (empty.before, empty.after, empty.on_error, empty.fallback) == (None, None, None, None)


@pytest.mark.parametrize(
    ("commands", "fragment"),
    [
        ([cmd("/start"), cmd("/start")], '"/start" is used by both /start.py and /start.py'),
        ([cmd("/start"), cmd("/START")], '"/START" is used by both'),
        ([cmd("/start"), cmd("/go", "/start")], '"/start" is used by both /start.py and /go.py'),
        ([cmd("/a", "/x"), cmd("/b", "/X")], '"/X" is used by both /a.py and /b.py'),
    ],
    ids=["same-name", "name-differing-in-case", "alias-equals-name", "same-alias"],
)
def test_duplicates_are_refused_when_building(commands: list[Command], fragment: str) -> None:
    """A name or alias used twice is a ValueError naming both files."""
    with pytest.raises(ValueError) as caught:
        CommandTable.build(commands)
    assert fragment in str(caught.value)


def test_plain_names_differing_in_case_are_different_commands() -> None:
    """Names without ``/`` are exact, so ``hello`` and ``Hello`` can coexist."""
    table = CommandTable.build([cmd("hello"), cmd("Hello")])
    found = match(table, update(text="Hello"))
    assert found is not None and found.command.name == "Hello"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("/start", "/start"), ("/Start", "/start"), ("/begin", None), ("@", "@"), ("Hello", None)],
    ids=["exact", "slash-ignores-case", "not-by-alias", "special", "plain-is-exact"],
)
def test_find_looks_up_a_command_by_its_name(name: str, expected: str | None) -> None:
    """find() is an exact lookup by name, for Bot.runCommand and webhooks."""
    found = find(TABLE, name)
    assert (found.name if found is not None else None) == expected


def test_require_returns_the_command_or_refuses_naming_bot_and_command() -> None:
    """require() is find() for scripts: an unknown name is a CapabilityError a script can read."""
    assert require(TABLE, "/Start", bot_id="demo").name == "/start"
    with pytest.raises(CapabilityError) as refused:
        require(TABLE, "/begin", bot_id="demo")
    assert refused.value.message == "bot 'demo' has no command '/begin'"


@pytest.mark.parametrize(
    ("text", "chat_id", "expected"),
    [
        ("/start", None, True),
        ("/begin", None, True),
        ("/set name x", None, True),
        ("Bob", None, False),
        ("*", None, False),
        ("/admin", None, False),
        ("/admin", GROUP, True),
    ],
    ids=[
        "name",
        "alias",
        "name-with-params",
        "plain-answer",
        "fallback",
        "group-only-private",
        "group-only-group",
    ],
)
def test_is_command_text_says_whether_a_reply_is_really_a_command(
    text: str, chat_id: int | None, expected: bool
) -> None:
    """A reply that is a command cancels a need_reply wait; plain answers do not."""
    assert is_command_text(TABLE, text, update(text="x", chat_id=chat_id)) is expected


@pytest.mark.parametrize(
    ("text", "bot_username", "expected"),
    [
        ("/start@MyBot", "MyBot", "/start"),
        ("/start@mybot a b", "@MyBot", "/start a b"),
        ("/start@Other a", "MyBot", "/start@Other a"),
        ("/start@Other a", None, "/start a"),
        ("mail me@example", None, "mail me@example"),
        ("/start@", None, "/start@"),
        ("/start@bad-name", None, "/start@bad-name"),
        ("/@MyBot", None, "/@MyBot"),
        ("/start x@MyBot", None, "/start x@MyBot"),
    ],
    ids=[
        "own-bot",
        "case-and-at-sign",
        "other-bot",
        "unknown-bot-username",
        "not-a-command",
        "empty-username",
        "not-a-username",
        "no-command-name",
        "only-the-first-word",
    ],
)
def test_strip_bot_username(text: str, bot_username: str | None, expected: str) -> None:
    """``/cmd@username`` loses the username only on the first word of a command."""
    assert strip_bot_username(text, bot_username) == expected


def test_names_are_owned_once_by_the_rule_dispatch_matches_with():
    """`/Start` and `/start` clash (slash names are case-insensitive); plain names are exact."""
    owners: NameOwners[str] = NameOwners()
    assert owners.claim("/start", "a.py") is None
    assert owners.claim("/START", "b.py") == "a.py"
    assert owners.claim("hello", "c.py") is None
    assert owners.claim("Hello", "d.py") is None
    assert owners.claim("hello", "e.py") == "c.py"


KINDS = load_spec().update_kinds()
MESSAGE_LIKE = (
    "business_message",
    "callback_query",
    "channel_post",
    "edited_business_message",
    "edited_channel_post",
    "edited_message",
    "message",
)


def test_the_spec_lists_the_update_kinds_telegram_sends_only_when_asked() -> None:
    """The packaged spec knows chat_member and the reaction updates, not update_id."""
    assert {"message", "chat_member", "message_reaction", "message_reaction_count"} <= set(KINDS)
    assert "update_id" not in KINDS


def test_update_types_follow_the_commands_a_bot_has() -> None:
    """Named commands take message-like kinds; handlers add exactly their kind; unknown are out."""
    table = CommandTable.build(
        [
            cmd("/start"),
            cmd("/handle_chat_member"),
            cmd("/handle_message_reaction"),
            cmd("/handle_no_such_kind"),
            cmd("/inline_query"),
            cmd("@"),
        ]
    )
    assert update_types(table, KINDS) == tuple(
        sorted({*MESSAGE_LIKE, "chat_member", "message_reaction", "inline_query"})
    )


def test_a_bot_with_only_handlers_asks_only_for_their_kinds() -> None:
    """No named command and no ``*``: no messages are asked for; ``/channel_update`` adds posts."""
    table = CommandTable.build([cmd("/handle_message_reaction_count"), cmd("/channel_update")])
    assert update_types(table, KINDS) == (
        "channel_post",
        "edited_channel_post",
        "message_reaction_count",
    )
    assert update_types(CommandTable.build([cmd("*")]), KINDS) == MESSAGE_LIKE


def test_menu_lists_described_commands_telegram_accepts() -> None:
    """Only /names with a description that Telegram allows make the menu, lowercased, cut to 256."""
    described = [
        Command(name=name, description=text, source="x = 1\n", path="c.py")
        for name, text in [
            ("/Start", "Begin here"),
            ("/help", "x" * 300),
            ("/quiet", ""),
            ("/set name", "two words"),
            ("hello", "no slash"),
            ("/handle_chat_member", "a handler"),
            ("*", "fallback"),
        ]
    ]
    assert menu(CommandTable.build(described)) == [
        {"command": "start", "description": "Begin here"},
        {"command": "help", "description": "x" * 256},
    ]
