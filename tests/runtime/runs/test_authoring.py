"""Authoring a bot: ``lib/`` modules, ``settings``, ``Keyboard``, the ``Bot.send*`` shortcuts
and ``res`` in every run, through the app in process (real worker pool, store, stand-in)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from runtime.store import RunRecord
from runtime.web.app import SECRET_HEADER
from tests.support.runtime import TOKEN, wait_until
from tests.support.updates import make_update
from tests.support.web import Web, serve

YAML = "settings:\n  greeting: Hello\n  admins: [1, 2]\n  quiz:\n    answer: 4\n"

QUIZ = '''"""Questions, checked against settings."""
from lib import words

PROMPT = "two plus two?"


def ask():
    return Bot.sendKeyboard(words.shout(PROMPT), Keyboard.inline([[("3", "q 3"), ("4", "q 4")]]))


def check(answer):
    return answer == settings["quiz"]["answer"]


def ratio(a, b):
    total = a + b
    return total / (a - a)
'''
WORDS = 'def shout(text):\n    return settings["greeting"] + ", " + text.upper()\n'

QUIZ_COMMAND = '"""\ncommand: /quiz\n"""\nfrom lib import quiz\nquiz.ask()\n'
CHECK = '"""\ncommand: check\n"""\nimport lib.quiz\nres.json({"right": lib.quiz.check(options)})\n'
BOOM = '"""\ncommand: boom\n"""\nfrom lib.quiz import ratio\n\nratio(1, 2)\n'
BOTH = (
    '"""\ncommand: /both\n"""\nBot.setProperty("both", True)\n'
    'res.status(201)\nres.json({"served": "link"})\nBot.sendMessage("after res")\n'
)
SETTINGS = (
    '"""\ncommand: settings\n"""\nseen = settings["admins"][:]\n'
    'settings["admins"].append(3)\nsettings["new"] = 1\nres.json({"seen": seen})\n'
)
ERROR = (
    '"""\ncommand: "!"\n"""\n'
    'where = f" ({error[\'file\']}:{error[\'line\']})" if error["file"] else ""\n'
    'Bot.sendMessage("failed: " + error["message"] + where)\n'
    'if (options or {}).get("page") == "status":\n    res.status(503)\n'
    'if (options or {}).get("page") != "none":\n'
    '    res.html("<p>Sorry: " + error["type"] + "</p>")\n'
)
FAIL = '"""\ncommand: fail\n"""\nx = 1 / 0\n'
KB = '''"""
command: kb
"""
form, site = options["form"], ("Site", "https://example.org/x")
if form == "inline":
    res.json(Bot.sendKeyboard("pick", Keyboard.inline([["A", site], [("B", "vote b")]])))
elif form == "reply":
    res.json(Bot.sendKeyboard("pick", Keyboard.reply([["A", "B"], ["C"]], one_time=True)))
elif form == "tbl":
    res.json(Bot.sendMessage("pick", reply_markup=Keyboard.reply("A, B\\nC", resize=False)))
elif form == "remove":
    res.json(Bot.sendMessage("gone", reply_markup=Keyboard.remove()))
elif form == "too-long":
    Keyboard.inline([[("Big", "x" * 65)]])
elif form == "too-long-utf8":
    Keyboard.inline([[("Big", "é" * 33)]])
elif form == "raw-too-long":
    markup = {"inline_keyboard": [[{"text": "Raw", "callback_data": "y" * 70}]]}
    try:
        Api.sendMessage(text="raw", reply_markup=markup)
    except ApiError as e:
        res.json({"code": e.code, "description": e.description})
elif form == "send-keyboard":
    res.json(Bot.sendKeyboard("menu", "Yes, No\\nMaybe"))
elif form == "keyboard-dict":
    res.json(Bot.sendKeyboard({"text": "menu", "keyboard": Keyboard.remove()}))
elif form == "one-dict":
    res.json(Bot.sendMessage({"text": "by dict", "disable_notification": True}))
elif form == "photo":
    res.json(Bot.sendPhoto("https://example.org/cat.jpg", caption="cat"))
elif form == "sticker-dict":
    res.json(Bot.sendSticker({"sticker": "CAACAgIAAxkBAAE"}))
elif form == "bad-keyboard":
    try:
        Bot.sendKeyboard("menu", 5)
    except ApiError as e:
        res.json({"code": e.code, "description": e.description})
'''
IMPORT_SEND = '"""\ncommand: noisy\n"""\nfrom lib import noisy\n'
NOISY = 'GREETING = "hi"\nBot.sendMessage("at import")\n'


@pytest.fixture(scope="module")
async def web(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Web]:
    """Bot ``author`` with lib/quiz.py, lib/words.py, settings and the commands above; bot
    ``other`` with no lib."""
    files = {
        "lib/quiz.py": QUIZ,
        "lib/words.py": WORDS,
        "lib/noisy.py": NOISY,
        "quiz.py": QUIZ_COMMAND,
        "check.py": CHECK,
        "boom.py": BOOM,
        "both.py": BOTH,
        "settings.py": SETTINGS,
        "error.py": ERROR,
        "fail.py": FAIL,
        "kb.py": KB,
        "noisy.py": IMPORT_SEND,
    }
    other = {"steal.py": '"""\ncommand: steal\n"""\nfrom lib import quiz\nres.json(1)\n'}
    async with serve(
        tmp_path_factory.mktemp("authoring"),
        {"author": files, "other": other},
        yaml={"author": YAML},
    ) as started:
        yield started


async def click(web: Web, command: str, options: object = None, *, bot: str = "author") -> Any:
    """Click a link to one of the bot's commands (user 7); return the response."""
    return await web.http.get(web.link(bot, command, options=options))


async def post(web: Web, text: str, update_id: int, *, bot: str = "author") -> None:
    """Send a chat message from user 5 through Telegram's endpoint; wait until handled."""
    handled = web.state.processor.handled
    update = make_update(update_id=update_id, user_id=5, chat_id=5, text=text, bot_token=TOKEN)
    headers = {SECRET_HEADER: web.state.registry.get(bot).webhook_secret}
    response = await web.http.post(f"/telegram/{bot}", json=update, headers=headers)
    assert response.status_code == 200, response.text
    await wait_until(
        lambda: web.state.processor.handled > handled, timeout=20, what=f"{text} handled"
    )


async def last_run(web: Web, command: str, bot: str = "author") -> RunRecord:
    """The newest run of ``command`` in the run log."""
    for run in await web.runs(bot, 20):
        if run.command == command:
            return run
    raise AssertionError(f"no run of {command}")


# -- lib/ --


async def test_a_command_imports_lib_modules_that_use_settings_keyboard_and_capabilities(
    web: Web,
) -> None:
    await post(web, "/quiz", 1)
    call = web.telegram.calls_to("sendMessage")[-1]
    assert call.params["text"] == "Hello, TWO PLUS TWO?"
    assert call.params["reply_markup"] == {
        "inline_keyboard": [
            [{"text": "3", "callback_data": "q 3"}, {"text": "4", "callback_data": "q 4"}]
        ]
    }


async def test_import_lib_quiz_works_from_a_link(web: Web) -> None:
    assert (await click(web, "check", 4)).json() == {"right": True}
    assert (await click(web, "check", 3)).json() == {"right": False}


async def test_an_error_inside_a_lib_function_names_the_lib_file_and_line(web: Web) -> None:
    response = await click(web, "boom")
    assert response.status_code == 500
    run = await last_run(web, "boom")
    error = run.error
    assert isinstance(error, dict)
    assert (error["type"], error["file"], error["line"]) == ("ZeroDivisionError", "lib/quiz.py", 17)
    frames = [(f["file"], f["line"], f["text"]) for f in error["traceback"]]
    assert frames == [
        ("boom.py", 6, "ratio(1, 2)"),
        ("lib/quiz.py", 17, "return total / (a - a)"),
    ]


async def test_a_lib_module_calling_a_capability_at_import_fails_with_a_clear_error(
    web: Web,
) -> None:
    sent = len(web.telegram.calls_to("sendMessage"))
    assert (await click(web, "noisy", {"page": "none"})).status_code == 500
    error = (await last_run(web, "noisy")).error
    assert isinstance(error, dict) and error["type"] == "ImportError"
    assert "a module may not use capabilities at import time" in str(error["message"])
    assert (error["file"], error["line"]) == ("lib/noisy.py", 2)
    # Only the `!` command's message went out, nothing from the import.
    texts = [c.params["text"] for c in web.telegram.calls_to("sendMessage")[sent:]]
    assert texts == ["failed: " + str(error["message"]) + " (lib/noisy.py:2)"]


async def test_another_bot_cannot_import_this_bots_lib(web: Web) -> None:
    assert (await click(web, "steal", bot="other")).status_code == 500
    error = (await last_run(web, "steal", bot="other")).error
    assert isinstance(error, dict) and error["type"] == "ImportError"
    assert "'lib' is not allowed" in str(error["message"])


# -- settings --


async def test_settings_is_a_copy_per_run_that_a_run_cannot_change(web: Web) -> None:
    first = (await click(web, "settings")).json()
    second = (await click(web, "settings")).json()
    assert first == second == {"seen": [1, 2]}


# -- res in every run --


async def test_res_in_a_chat_run_is_ignored_and_noted_and_the_script_goes_on(web: Web) -> None:
    await post(web, "/both", 2)
    assert web.telegram.calls_to("sendMessage")[-1].params["text"] == "after res"
    run = await last_run(web, "/both")
    assert run.status == "ok"
    assert run.extra["notes"] == [
        "res.status at line 5 ignored: this run was not started by a link",
        "res.json at line 6 ignored: this run was not started by a link",
    ]
    assert await web.state.store.get_property("author", "bot", "both") is True


async def test_res_ending_a_click_script_is_noted_with_its_line(web: Web) -> None:
    sent = len(web.telegram.calls_to("sendMessage"))
    response = await click(web, "/both")
    assert (response.status_code, response.json()) == (201, {"served": "link"})
    assert len(web.telegram.calls_to("sendMessage")) == sent  # the script ended at res.json
    run = await last_run(web, "/both")
    assert run.extra["notes"] == ["res.json at line 6 ended the script"]
    lines = {
        call["name"]: call.get("line")
        for call in run.calls
        if isinstance(call, dict) and str(call["name"]).startswith("res.")
    }
    assert lines == {"res.status": 5, "res.json": 6}


async def test_the_error_command_of_a_click_answers_with_its_own_page(web: Web) -> None:
    response = await click(web, "fail")
    assert response.status_code == 500
    assert response.text == "<p>Sorry: ZeroDivisionError</p>"
    assert response.headers["content-type"].startswith("text/html")
    status = await click(web, "fail", {"page": "status"})
    assert (status.status_code, status.text) == (503, "<p>Sorry: ZeroDivisionError</p>")


async def test_an_error_command_without_res_leaves_the_platforms_error_page(web: Web) -> None:
    response = await click(web, "fail", {"page": "none"})
    assert response.status_code == 500
    assert "the bot's command failed" in response.text


async def test_the_error_command_of_a_chat_run_has_its_res_ignored(web: Web) -> None:
    await post(web, "fail", 3)
    assert web.telegram.calls_to("sendMessage")[-1].params["text"] == "failed: division by zero"
    run = await last_run(web, "!")
    assert (run.trigger, run.status) == ("update:3", "ok")
    assert run.extra["notes"] == ["res.html at line 9 ignored: this run was not started by a link"]
    clicked = await click(web, "fail")
    assert clicked.status_code == 500
    assert (await last_run(web, "!")).extra["notes"] == ["res.html at line 9 ended the script"]


# -- Keyboard and the shortcuts --


@pytest.mark.parametrize(
    ("form", "markup"),
    [
        (
            "inline",
            {
                "inline_keyboard": [
                    [
                        {"text": "A", "callback_data": "A"},
                        {"text": "Site", "url": "https://example.org/x"},
                    ],
                    [{"text": "B", "callback_data": "vote b"}],
                ]
            },
        ),
        (
            "reply",
            {
                "keyboard": [[{"text": "A"}, {"text": "B"}], [{"text": "C"}]],
                "resize_keyboard": True,
                "one_time_keyboard": True,
            },
        ),
        (
            "tbl",
            {
                "keyboard": [[{"text": "A"}, {"text": "B"}], [{"text": "C"}]],
                "resize_keyboard": False,
            },
        ),
        ("remove", {"remove_keyboard": True}),
    ],
)
async def test_keyboard_helpers_build_the_reply_markup_telegram_receives(
    web: Web, form: str, markup: dict[str, Any]
) -> None:
    response = await click(web, "kb", {"form": form})
    assert response.status_code == 200, response.text
    assert web.telegram.calls_to("sendMessage")[-1].params["reply_markup"] == markup


@pytest.mark.parametrize(
    ("form", "size"), [("too-long", 65), ("too-long-utf8", 66)], ids=["ascii", "utf8"]
)
async def test_a_callback_data_over_64_bytes_fails_at_the_authors_line(
    web: Web, form: str, size: int
) -> None:
    sent = len(web.telegram.calls)
    assert (await click(web, "kb", {"form": form, "page": "none"})).status_code == 500
    error = (await last_run(web, "kb")).error
    assert isinstance(error, dict) and error["type"] == "ValueError"
    assert error["message"] == (
        f"Keyboard.inline(): the callback data of button 'Big' is {size} bytes; "
        "Telegram takes 1 to 64 bytes (UTF-8)"
    )
    assert error["file"] is None
    assert error["line"] == (14 if form == "too-long" else 16)
    assert [f["file"] for f in error["traceback"]] == ["kb.py"]
    assert len(web.telegram.calls) == sent + 1  # only the `!` command's message


async def test_the_server_checks_callback_data_before_sending_any_markup(web: Web) -> None:
    sent = len(web.telegram.calls)
    answered = (await click(web, "kb", {"form": "raw-too-long"})).json()
    assert answered["code"] == 400
    assert answered["description"] == (
        "reply_markup: the callback_data of button 'Raw' (row 1) is 70 bytes; "
        "Telegram takes 1 to 64 bytes (UTF-8)"
    )
    assert len(web.telegram.calls) == sent


async def test_send_keyboard_takes_the_tbl_notation(web: Web) -> None:
    assert (await click(web, "kb", {"form": "send-keyboard"})).status_code == 200
    params = web.telegram.calls_to("sendMessage")[-1].params
    assert (params["chat_id"], params["text"]) == (7, "menu")
    assert params["reply_markup"] == {
        "keyboard": [[{"text": "Yes"}, {"text": "No"}], [{"text": "Maybe"}]],
        "resize_keyboard": True,
    }


async def test_send_keyboard_takes_one_dict(web: Web) -> None:
    assert (await click(web, "kb", {"form": "keyboard-dict"})).status_code == 200
    params = web.telegram.calls_to("sendMessage")[-1].params
    assert params == {"chat_id": 7, "text": "menu", "reply_markup": {"remove_keyboard": True}}


async def test_send_keyboard_refuses_what_is_not_a_keyboard(web: Web) -> None:
    answered = (await click(web, "kb", {"form": "bad-keyboard"})).json()
    assert answered["code"] == 400
    assert answered["description"].startswith("Bot.sendKeyboard: the keyboard is")


async def test_bot_send_message_takes_one_dict(web: Web) -> None:
    assert (await click(web, "kb", {"form": "one-dict"})).status_code == 200
    params = web.telegram.calls_to("sendMessage")[-1].params
    assert params == {"chat_id": 7, "text": "by dict", "disable_notification": True}


@pytest.mark.parametrize(
    ("form", "method", "params"),
    [
        ("photo", "sendPhoto", {"photo": "https://example.org/cat.jpg", "caption": "cat"}),
        ("sticker-dict", "sendSticker", {"sticker": "CAACAgIAAxkBAAE"}),
    ],
)
async def test_media_shortcuts_send_to_the_current_chat(
    web: Web, form: str, method: str, params: dict[str, Any]
) -> None:
    response = await click(web, "kb", {"form": form})
    assert response.status_code == 200, response.text
    assert web.telegram.calls_to(method)[-1].params == {"chat_id": 7, **params}
