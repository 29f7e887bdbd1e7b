"""A run's capabilities: Bot.run's limits (generations, the pending cap, commits) through a real
runner and processor; ``Api`` calls and the per-run schedule limit through link clicks on the
app in process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runtime.store import MISSING, NewRun, SqliteStore, Versioned
from sandbox import WorkerPool
from tests.support.runtime import Hosted, hosted, wait_until, write_bot
from tests.support.web import Web, serve

ERROR = (
    '"""\ncommand: "!"\n"""\nBot.sendMessage(f"failed: {error[\'type\']}: {error[\'message\']}")\n'
)
NOOP = '"""\ncommand: noop\n"""\nBot.setProperty("noop_ran", True)\n'
HOP = (
    '"""\ncommand: /hop\n"""\ng = options or 0\nBot.setProperty(f"hop{g}", True)\n'
    "try:\n    Bot.run(command='/hop', options=g + 1)\n"
    "except Exception as e:\n    Bot.sendMessage(f'stopped at {g}: {e}')\n"
)
BURST = (
    '"""\ncommand: /burst\n"""\ndone = 0\ntry:\n    for i in range(20):\n'
    "        Bot.run(command='noop', run_after=3600)\n        done += 1\n"
    "except Exception as e:\n    Bot.sendMessage(f'queued {done}: {e.limit}={e.value}: {e}')\n"
)
RACE = (
    '"""\ncommand: /race\n"""\nBot.run(command="noop", run_after=3600)\n'
    'Bot.setProperty("mine", True)\nBot.getProperty("race")\n'
)


class RacingStore(SqliteStore):
    """A store on which reading the property ``race`` lets a rival fill the bot's cap of 5 first.

    The rival is a second store on the same file, as another server process would be: it lands
    its runs between the script's ``Bot.run`` check and the script's commit.
    """

    async def read_property(self, bot_id: str, scope: str, name: str) -> Versioned:
        """Let the rival commit when the script reads ``race``; then read as usual."""
        if name == "race":
            rival = SqliteStore(self.path)
            await rival.open()
            try:
                await rival.commit_run(
                    bot_id,
                    [],
                    [NewRun("rival", {"command": "noop"}, run_after=1e12)] * 5,
                    max_bot_bytes=1000,
                    max_pending_runs=5,
                )
            finally:
                await rival.close()
        return await super().read_property(bot_id, scope, name)


@pytest.fixture
async def lab(pool: WorkerPool, tmp_path: Path) -> AsyncIterator[Hosted]:
    """Bots `chain` (3 generations) and `capped` (5 pending runs), processed in-process."""
    folders = [
        write_bot(
            tmp_path / "bots",
            "chain",
            {"hop.py": HOP, "error.py": ERROR},
            yaml="runs:\n  max_generations: 3\n",
        ),
        write_bot(
            tmp_path / "bots",
            "capped",
            {"burst.py": BURST, "noop.py": NOOP, "race.py": RACE, "error.py": ERROR},
            yaml="runs:\n  max_pending: 5\n",
        ),
    ]
    async with hosted(pool, tmp_path, folders, store_class=RacingStore) as running:
        running.processor.start()
        yield running


async def pending(lab: Hosted, bot_id: str, n: int) -> bool:
    """Whether the bot has exactly ``n`` unfinished scheduled runs."""
    return await lab.store.pending_count(bot_id, kind="run") == n


async def texts(lab: Hosted, n: int) -> list[str]:
    """Wait for ``n`` sendMessage calls; return their texts."""
    await wait_until(
        lambda: len(lab.telegram.calls_to("sendMessage")) >= n, timeout=20, what=f"{n} messages"
    )
    return [str(call.params["text"]) for call in lab.telegram.calls_to("sendMessage")]


async def test_a_chain_stops_at_its_last_generation_with_an_error_naming_the_limit(
    lab: Hosted,
) -> None:
    """/hop reschedules itself: generations 0 to 3 run, and generation 3's Bot.run is refused."""
    await lab.post("chain", 1, "/hop", chat=11)
    (text,) = await texts(lab, 1)
    assert text == (
        "stopped at 3: Bot.run refused: this run is generation 3 of a chain started by one "
        "update or click, and runs.max_generations in bot.yaml is 3"
    )
    # The message is sent mid-run; generation 3's writes are committed when its run ends.
    await wait_until(lambda: pending(lab, "chain", 0), timeout=10, what="the chain to drain")
    for g in range(4):
        assert await lab.store.get_property("chain", "bot", f"hop{g}") is True
    assert await lab.store.get_property("chain", "bot", "hop4") is MISSING


async def test_bot_run_past_the_pending_cap_raises_naming_the_bot_yaml_key(lab: Hosted) -> None:
    """With runs.max_pending 5, the sixth Bot.run raises; later runs of the bot get none in."""
    await lab.post("capped", 1, "/burst", chat=21)
    (first,) = await texts(lab, 1)
    assert first == (
        "queued 5: runs.max_pending=5: Bot.run refused: bot 'capped' has 5 unfinished scheduled "
        "runs (5 of them from this run), and runs.max_pending in bot.yaml is 5"
    )
    await wait_until(lambda: pending(lab, "capped", 5), timeout=10, what="5 runs queued")
    await lab.post("capped", 2, "/burst", chat=22)
    second = (await texts(lab, 2))[1]
    assert second.startswith("queued 0: runs.max_pending=5: Bot.run refused: bot 'capped' has 5")
    assert await lab.store.pending_count("capped", kind="run") == 5


async def test_a_commit_refused_by_the_cap_writes_nothing_and_reports_the_error(
    lab: Hosted,
) -> None:
    """A rival fills the cap between Bot.run's check and the commit: the run fails whole."""
    await lab.post("capped", 1, "/race", chat=31)
    (text,) = await texts(lab, 1)
    assert text == (
        "failed: PendingRunsExceeded: bot 'capped' has 5 unfinished scheduled runs; 1 more would "
        "pass its limit of 5 (runs.max_pending in bot.yaml)"
    )
    assert await lab.store.get_property("capped", "bot", "mine") is MISSING
    assert await lab.store.pending_count("capped", kind="run") == 5


API = (
    '"""\ncommand: api\n"""\nf = options["form"]\n'
    "try:\n"
    '    if f == "call":\n        got = Api.call(options["method"], options["params"])\n'
    '    elif f == "call-no-name":\n        got = Api.call()\n'
    '    elif f == "call-name-not-text":\n        got = Api.call(5, {"text": "x"})\n'
    '    elif f == "call-dict-and-keywords":\n'
    '        got = Api.call("sendMessage", {"text": "x"}, parse_mode="HTML")\n'
    '    elif f == "call-two-dicts":\n        got = Api.call("sendMessage", {"text": "x"}, {})\n'
    '    elif f == "keywords":\n        got = Api.sendMessage(text="by keywords")\n'
    '    elif f == "one-dict":\n        got = Api.sendMessage({"text": "by dict"})\n'
    '    res.json({"result": got})\n'
    "except ApiError as e:\n"
    '    res.json({"code": e.code, "description": e.description})\n'
)
SCHEDULE = (
    '"""\ncommand: schedule\n"""\nn = 0\ntry:\n    for i in range(options):\n'
    "        Bot.run(command='noop', run_after=3600)\n        n += 1\n"
    "except Exception as e:\n    res.json({'queued': n, 'error': str(e)})\n"
    "res.json({'queued': n})\n"
)


CAST = (
    '"""\ncommand: cast\n"""\nif "many" in options:\n'
    '    options = {"command": "noop", "user_ids": list(range(1, options["many"] + 1))}\n'
    'elif "big" in options:\n'
    '    options = {"command": "noop", "options": "x" * options["big"]}\n'
    'try:\n    Bot.broadcast(**options)\n    res.json({"ok": True})\n'
    "except Exception as e:\n    res.json({'error': str(e)})\n"
)


@pytest.fixture(scope="module")
async def web(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Web]:
    """Bots ``caps`` (runs.max_pending 30) and ``many`` with the api and schedule commands."""
    files = {"api.py": API, "schedule.py": SCHEDULE, "noop.py": NOOP, "cast.py": CAST}
    yaml = {"caps": "runs:\n  max_pending: 30\n"}
    bots = {"caps": files, "many": files}
    async with serve(tmp_path_factory.mktemp("session"), bots, yaml=yaml) as started:
        yield started


async def click(web: Web, command: str, options: object, *, bot: str = "caps") -> object:
    """Click a link to one of the bot's commands (user 7); return the JSON it answered."""
    response = await web.http.get(web.link(bot, command, options=options))
    assert response.status_code == 200, response.text
    return response.json()


async def test_api_call_sends_a_method_named_in_a_value_to_the_current_chat(web: Web) -> None:
    """``Api.call(name, dict)`` makes that Bot API call, with ``chat_id`` filled in."""
    options = {"form": "call", "method": "sendDice", "params": {"emoji": "🎲"}}
    answered = await click(web, "api", options)
    assert isinstance(answered, dict) and answered["result"]["chat"]["id"] == 7
    assert web.telegram.calls_to("sendDice")[-1].params == {"chat_id": 7, "emoji": "🎲"}


@pytest.mark.parametrize(
    ("form", "text"), [("keywords", "by keywords"), ("one-dict", "by dict")], ids=str
)
async def test_api_methods_take_keywords_or_one_dict(web: Web, form: str, text: str) -> None:
    """``Api.sendMessage(text=...)`` and ``Api.sendMessage({...})`` send the same call."""
    await click(web, "api", {"form": form})
    assert web.telegram.calls_to("sendMessage")[-1].params == {"chat_id": 7, "text": text}


API_REFUSALS = [
    ("call-no-name", 400, "Api.call needs the method name first, as in Api.call('sendMessage', "
     "{'text': 'hi'})"),
    ("call-name-not-text", 400, "Api.call needs the method name first"),
    ("call-dict-and-keywords", 400, "Api.sendMessage takes keyword arguments or one dict"),
    ("call-two-dicts", 400, "Api.sendMessage takes keyword arguments or one dict"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("form", "code", "description"),
    [case for case in API_REFUSALS],
    ids=[case[0] for case in API_REFUSALS],
)
async def test_a_malformed_api_call_raises_api_error_and_sends_nothing(
    web: Web, form: str, code: int, description: str
) -> None:
    """A call without a method name, or with a dict and keywords, is refused before Telegram."""
    sent = len(web.telegram.calls)
    answered = await click(web, "api", {"form": form})
    assert isinstance(answered, dict) and answered["code"] == code
    assert answered["description"].startswith(description)
    assert len(web.telegram.calls) == sent


async def test_api_call_of_an_unknown_method_or_field_is_refused_with_a_suggestion(
    web: Web,
) -> None:
    """The spec check refuses an unknown method or field with a "did you mean"."""
    method = await click(web, "api", {"form": "call", "method": "sendMesage", "params": {}})
    assert isinstance(method, dict) and method["code"] == 400
    assert "sendMessage" in method["description"]
    field = await click(
        web, "api", {"form": "call", "method": "sendMessage", "params": {"txt": "x"}}
    )
    assert isinstance(field, dict) and field["code"] == 400 and "text" in field["description"]


async def test_telegrams_refusal_of_api_call_reaches_the_script_as_api_error(web: Web) -> None:
    """Telegram's error code and description are the ApiError's ``code`` and ``description``."""
    web.telegram.fail_next("sendDice", 403, "Forbidden: bot was blocked by the user")
    options = {"form": "call", "method": "sendDice", "params": {}}
    answered = await click(web, "api", options)
    assert answered == {"code": 403, "description": "Forbidden: bot was blocked by the user"}


async def test_one_run_schedules_at_most_20_runs(web: Web) -> None:
    """The 21st Bot.run of one run raises; the 20 before it are queued when the run ends."""
    before = await web.pending("many")
    answered = await click(web, "schedule", 21, bot="many")
    assert answered == {"queued": 20, "error": "a run may schedule at most 20 runs"}
    assert await web.pending("many") == before + 20


async def test_bot_run_past_max_pending_raises_naming_the_limit(web: Web) -> None:
    """With runs.max_pending 30, runs queue up to 30 and the next Bot.run is refused."""
    while (await web.pending("caps")) + 20 <= 30:
        await click(web, "schedule", 20)
    left = 30 - await web.pending("caps")
    answered = await click(web, "schedule", 20)
    assert isinstance(answered, dict) and answered["queued"] == left
    assert "runs.max_pending in bot.yaml is 30" in answered["error"]
    assert await web.pending("caps") == 30


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({}, "Bot.broadcast needs command=..."),
        ({"command": "nope"}, "nope"),
        ({"command": "noop", "users": [1]}, "takes command, user_ids and options, not ['users']"),
        ({"command": "noop", "user_ids": 5}, "user_ids must be a list of at most 10000"),
        ({"command": "noop", "user_ids": [1, "2"]}, "user_ids must hold user ids"),
        ({"command": "noop", "user_ids": [0]}, "user_ids must hold user ids"),
        ({"command": "noop", "user_ids": [True]}, "user_ids must hold user ids"),
        ({"many": 10_001}, "at most 10000"),
        ({"big": 16_384}, "options are 16386 bytes as JSON; at most 16384"),
    ],
    ids=[
        "no-command",
        "unknown-command",
        "typo",
        "not-a-list",
        "text-id",
        "zero",
        "bool",
        "many",
        "big-options",
    ],
)
async def test_bot_broadcast_refuses_bad_arguments_with_a_clear_error(
    web: Web, options: dict[str, object], error: str
) -> None:
    """Each bad call raises in the script, naming what is wrong; nothing is queued."""
    before = await web.state.store.pending_count("many", kind="run")
    answered = await click(web, "cast", options, bot="many")
    assert isinstance(answered, dict) and error in str(answered.get("error")), answered
    assert await web.state.store.pending_count("many", kind="run") == before


async def test_bot_broadcast_queues_one_step_when_the_run_ends_well(web: Web) -> None:
    """A good call commits a broadcast with the run; an empty list is done at its first step."""
    answered = await click(web, "cast", {"command": "noop", "user_ids": []}, bot="many")
    assert answered == {"ok": True}

    async def finished() -> bool:
        found = await web.state.store.broadcasts("many")
        return bool(found) and found[0].finished_at is not None and found[0].total == 0

    await wait_until(finished, timeout=10, what="the broadcast's first step")
