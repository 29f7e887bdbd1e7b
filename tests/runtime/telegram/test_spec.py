"""Tests of the packaged Bot API spec: lookups, suggestions and call checks."""

from __future__ import annotations

import importlib.util
import io
import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Final

import pytest

from runtime.telegram.spec import (
    SPEC_RESOURCE,
    BotApiSpec,
    CallProblem,
    UnknownMethodError,
    load_spec,
)

SPEC = load_spec()
REPO_ROOT = Path(__file__).resolve().parents[3]
PLAUSIBLE_SCALARS: Final[Mapping[str, object]] = MappingProxyType(
    {"Integer": 7, "Float": 1.5, "String": "text", "Boolean": True, "InputFile": b"\x89PNG"}
)


def plausible(type_str: str) -> object:
    """A plausible Python value for one spec type string."""
    if type_str.startswith("Array of "):
        return [plausible(type_str.removeprefix("Array of "))]
    if type_str in PLAUSIBLE_SCALARS:
        return PLAUSIBLE_SCALARS[type_str]
    return {}


def required_params(method: str) -> dict[str, object]:
    """Plausible values for exactly the required fields of ``method``."""
    spec = SPEC.method(method)
    return {name: plausible(spec.fields[name].types[0]) for name in spec.required_fields}


def kinds(problems: tuple[CallProblem, ...]) -> list[tuple[str, str | None]]:
    """The (kind, field) pairs of some problems, in order."""
    return [(problem.kind, problem.field) for problem in problems]


def load_generator() -> ModuleType:
    """Import scripts/gen_bot_api.py (scripts/ is not a package)."""
    path = REPO_ROOT / "scripts" / "gen_bot_api.py"
    module_spec = importlib.util.spec_from_file_location("gen_bot_api", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_packaged_spec_loads_with_the_full_method_set() -> None:
    """The packaged JSON loads and holds the whole Bot API, sendMessage included."""
    assert SPEC.version.startswith("Bot API ")
    assert len(SPEC.methods) > 150
    assert len(SPEC.types) > 250
    send_message = SPEC.method("sendMessage")
    assert set(send_message.required_fields) == {"chat_id", "text"}
    assert send_message.fields["chat_id"].types == ("Integer", "String")
    assert send_message.returns == ("Message",)


def test_load_spec_is_cached() -> None:
    """Loading twice returns the very same parsed spec."""
    assert load_spec() is load_spec()


def test_packaged_json_is_in_the_generators_canonical_form() -> None:
    """The packaged file is exactly what the generator's renderer would write for it."""
    generator = load_generator()
    text = resources.files("runtime.telegram").joinpath(SPEC_RESOURCE).read_text("utf-8")
    assert generator.render(json.loads(text)) == text


def test_generator_drops_descriptions_and_sorts_keys() -> None:
    """The generator keeps only names, types, required flags, returns and subtypes."""
    generator = load_generator()
    source = {
        "version": "Bot API 0.1",
        "methods": {
            "zeta": {"name": "zeta", "description": ["d"], "returns": ["Boolean"], "fields": []},
            "alpha": {
                "name": "alpha",
                "href": "h",
                "returns": ["Message"],
                "fields": [
                    {"name": "b", "types": ["String"], "required": True, "description": "d"},
                    {"name": "a", "types": ["Integer"], "required": False, "description": "d"},
                ],
            },
        },
        "types": {"U": {"name": "U", "description": ["d"], "subtypes": ["A", "B"]}},
    }
    text = generator.render(generator.compact_spec(source))
    assert text.endswith("}\n")
    assert "description" not in text
    assert "href" not in text
    document = json.loads(text)
    assert list(document["methods"]) == ["alpha", "zeta"]
    assert document["methods"]["alpha"]["fields"] == {
        "a": {"required": False, "types": ["Integer"]},
        "b": {"required": True, "types": ["String"]},
    }
    assert document["types"]["U"] == {"fields": {}, "subtypes": ["A", "B"]}
    assert BotApiSpec.from_json(document).method("alpha").required_fields == ("b",)


def test_from_json_rejects_a_malformed_document() -> None:
    """A document without a methods object is refused with a TypeError naming it."""
    with pytest.raises(TypeError, match="methods"):
        BotApiSpec.from_json({"version": "x", "methods": [], "types": {}})


def test_has_method_is_exact_but_canonical_name_ignores_case() -> None:
    """has_method matches case-sensitively; canonical_name resolves like Telegram does."""
    assert SPEC.has_method("sendMessage")
    assert not SPEC.has_method("sendmessage")
    assert SPEC.canonical_name("SENDMESSAGE") == "sendMessage"
    assert SPEC.canonical_name("sendMesage") is None


def test_method_lookup_of_an_unknown_name_raises_with_a_suggestion() -> None:
    """method() raises a KeyError subclass whose message suggests the closest method."""
    with pytest.raises(UnknownMethodError) as caught:
        SPEC.method("sendMesage")
    assert isinstance(caught.value, KeyError)
    assert caught.value.suggestion == "sendMessage"
    assert str(caught.value) == "unknown Bot API method 'sendMesage'; did you mean 'sendMessage'?"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sendmessage", "sendMessage"),
        ("SendMessage", "sendMessage"),
        ("sendMesage", "sendMessage"),
        ("sendMessages", "sendMessage"),
        ("answerCallbackQery", "answerCallbackQuery"),
        ("getme", "getMe"),
        ("editMessageTxt", "editMessageText"),
        ("setWebHook", "setWebhook"),
        ("zzzzzz", None),
    ],
    ids=[
        "lowercase",
        "capitalised",
        "typo",
        "extra-letter",
        "dropped-letter",
        "getme",
        "edit-typo",
        "webhook-case",
        "nothing-close",
    ],
)
def test_suggest_finds_the_closest_method(name: str, expected: str | None) -> None:
    """suggest() prefers a case-insensitive match, then the closest spelling, else None."""
    assert SPEC.suggest(name) == expected


def test_unknown_method_is_reported_with_a_suggestion() -> None:
    """check_call on a misspelt method reports only that, with a did-you-mean."""
    problems = SPEC.check_call("sendMesage", {"chat_id": 1, "text": "hi"})
    assert problems == (
        CallProblem(
            "unknown_method",
            None,
            "unknown Bot API method 'sendMesage'; did you mean 'sendMessage'?",
        ),
    )


def test_unknown_method_without_a_close_match_has_no_suggestion() -> None:
    """An unrecognisable method name is reported without a did-you-mean."""
    (problem,) = SPEC.check_call("frobnicate", {})
    assert problem.message == "unknown Bot API method 'frobnicate'"


def test_missing_required_field_message_names_the_field() -> None:
    """A call without a required field gets an actionable sentence naming it."""
    (problem,) = SPEC.check_call("sendMessage", {"chat_id": 1})
    assert problem == CallProblem(
        "missing_field", "text", "sendMessage is missing the required field 'text'"
    )


def test_unknown_field_message_suggests_the_closest_field() -> None:
    """A misspelt parameter is reported with the field it was probably meant to be."""
    (problem,) = SPEC.check_call("sendMessage", {"chat_id": 1, "text": "x", "parse_mod": "HTML"})
    assert problem == CallProblem(
        "unknown_field",
        "parse_mod",
        "sendMessage has no field 'parse_mod'; did you mean 'parse_mode'?",
    )


def test_unknown_field_on_a_method_without_parameters_says_so() -> None:
    """getMe takes no parameters, and the message says so."""
    (problem,) = SPEC.check_call("getMe", {"x": 1})
    assert problem.kind == "unknown_field"
    assert problem.message == "getMe has no field 'x'; it takes no parameters"


def test_wrong_type_message_names_the_expected_types() -> None:
    """A value of an impossible type is reported with the types the field accepts."""
    (problem,) = SPEC.check_call("sendMessage", {"chat_id": [1], "text": "x"})
    assert problem == CallProblem(
        "wrong_type",
        "chat_id",
        "sendMessage field 'chat_id' must be Integer or String, but got a list [1]",
    )


@pytest.mark.parametrize(
    ("method", "params", "expected"),
    [
        ("sendMessage", {}, [("missing_field", "chat_id"), ("missing_field", "text")]),
        ("sendMessage", {"chat_id": 1, "text": None}, [("missing_field", "text")]),
        (
            "sendMessage",
            {"chat_id": 1, "txt": "x"},
            [("missing_field", "text"), ("unknown_field", "txt")],
        ),
        (
            "sendMessage",
            {"chat_id": 1, "text": "x", "message_thread_id": "abc"},
            [("wrong_type", "message_thread_id")],
        ),
        (
            "sendMessage",
            {"chat_id": 1, "text": "x", "message_thread_id": 1.5},
            [("wrong_type", "message_thread_id")],
        ),
        ("sendMessage", {"chat_id": True, "text": "x"}, [("wrong_type", "chat_id")]),
        ("sendMessage", {"chat_id": 1, "text": {"a": 1}}, [("wrong_type", "text")]),
        ("sendMessage", {"chat_id": 1, "text": True}, [("wrong_type", "text")]),
        (
            "sendMessage",
            {"chat_id": 1, "text": "x", "disable_notification": "yes"},
            [("wrong_type", "disable_notification")],
        ),
        (
            "sendMessage",
            {"chat_id": 1, "text": "x", "reply_markup": 5},
            [("wrong_type", "reply_markup")],
        ),
        (
            "sendMessage",
            {"chat_id": 1, "text": "x", "reply_markup": [["a"]]},
            [("wrong_type", "reply_markup")],
        ),
        (
            "sendMessage",
            {"chat_id": 1, "text": "x", "entities": {"type": "bold"}},
            [("wrong_type", "entities")],
        ),
        (
            "sendMessage",
            {"chat_id": 1, "text": "x", "entities": [1, 2]},
            [("wrong_type", "entities")],
        ),
        (
            "sendLocation",
            {"chat_id": 1, "latitude": "north", "longitude": 2},
            [("wrong_type", "latitude")],
        ),
        (
            "deleteMessages",
            {"chat_id": 1, "message_ids": [1, "two"]},
            [("wrong_type", "message_ids")],
        ),
        ("sendPhoto", {"chat_id": 1, "photo": {"path": "a.png"}}, [("wrong_type", "photo")]),
        ("getMe", {"chat_id": 1}, [("unknown_field", "chat_id")]),
    ],
    ids=[
        "nothing-given",
        "none-counts-as-missing",
        "misspelt-required-field",
        "integer-given-word",
        "integer-given-float",
        "chat-id-given-bool",
        "string-given-object",
        "string-given-bool",
        "boolean-given-word",
        "object-given-int",
        "object-given-list",
        "array-given-object",
        "array-of-objects-given-ints",
        "float-given-word",
        "array-of-int-with-word",
        "input-file-given-object",
        "parameterless-method-given-field",
    ],
)
def test_check_call_reports_each_problem(
    method: str, params: dict[str, object], expected: list[tuple[str, str | None]]
) -> None:
    """Each broken call yields exactly the problems listed, in field order."""
    assert kinds(SPEC.check_call(method, params)) == expected


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("sendMessage", {"chat_id": 42, "text": "hello"}),
        ("sendMessage", {"chat_id": "@channel", "text": "hello"}),
        ("sendMessage", {"chat_id": "-1001234", "text": "hello"}),
        ("sendMessage", {"chat_id": 1, "text": 12345}),
        ("sendMessage", {"chat_id": 1, "text": "x", "reply_markup": None}),
        (
            "sendMessage",
            {
                "chat_id": 1,
                "text": "*hi*",
                "parse_mode": "MarkdownV2",
                "entities": [{"type": "bold", "offset": 0, "length": 2}],
                "disable_notification": True,
                "reply_markup": {"inline_keyboard": [[{"text": "a", "callback_data": "b"}]]},
                "reply_parameters": {"message_id": 3},
            },
        ),
        ("sendMessage", {"chat_id": 1, "text": "x", "reply_markup": '{"remove_keyboard": true}'}),
        ("sendMessage", {"chat_id": 1, "text": "x", "disable_notification": "true"}),
        ("sendMessage", {"chat_id": 1, "text": "x", "message_thread_id": "17"}),
        ("sendPhoto", {"chat_id": 1, "photo": "AgACAgIAAxkBAAI"}),
        ("sendPhoto", {"chat_id": 1, "photo": b"\x89PNG"}),
        ("sendPhoto", {"chat_id": 1, "photo": io.BytesIO(b"\x89PNG")}),
        ("sendPhoto", {"chat_id": 1, "photo": Path("photo.png")}),
        ("sendLocation", {"chat_id": 1, "latitude": 51, "longitude": -0.12}),
        ("sendMediaGroup", {"chat_id": 1, "media": [{"type": "photo", "media": "id1"}]}),
        ("answerCallbackQuery", {"callback_query_id": "123", "text": "done"}),
        ("setMyCommands", {"commands": [{"command": "start", "description": "Start"}]}),
        ("editMessageText", {"inline_message_id": "abc", "text": "new"}),
        ("getUpdates", {"offset": 10, "timeout": 30, "allowed_updates": ["message"]}),
        ("setWebhook", {"url": "https://example.com/hook", "secret_token": "s3cret"}),
        ("getMe", {}),
    ],
    ids=[
        "send-message-minimal",
        "chat-id-username",
        "chat-id-numeric-string",
        "text-number",
        "optional-none",
        "send-message-full",
        "markup-pre-serialised",
        "boolean-as-string",
        "integer-as-string",
        "photo-file-id",
        "photo-bytes",
        "photo-file-object",
        "photo-path",
        "integer-latitude",
        "media-group",
        "answer-callback",
        "set-commands",
        "edit-inline-message",
        "get-updates",
        "set-webhook",
        "get-me",
    ],
)
def test_valid_calls_pass(method: str, params: dict[str, object]) -> None:
    """Calls a bot author would reasonably make are never rejected."""
    assert SPEC.check_call(method, params) == ()


@pytest.mark.parametrize("method", sorted(SPEC.methods), ids=sorted(SPEC.methods))
def test_every_method_passes_with_only_its_required_fields(method: str) -> None:
    """Filling just the required fields with plausible values is a valid call."""
    assert SPEC.check_call(method, required_params(method)) == ()


def test_check_object_accepts_a_valid_nested_object() -> None:
    """A spec-shaped Message with nested Chat and User has no problems."""
    message = {
        "message_id": 1,
        "date": 0,
        "chat": {"id": 1, "type": "private", "first_name": "A"},
        "from": {"id": 1, "is_bot": False, "first_name": "A"},
        "entities": [{"type": "bold", "offset": 0, "length": 1}],
        "text": "x",
    }
    assert SPEC.check_object("Message", message) == ()


def test_check_object_reports_nested_problems_with_dotted_paths() -> None:
    """Unknown and missing nested fields are reported at their path."""
    message = {"message_id": 1, "date": 0, "chat": {"id": 1, "typ": "private"}}
    assert kinds(SPEC.check_object("Message", message)) == [
        ("missing_field", "chat.type"),
        ("unknown_field", "chat.typ"),
    ]


def test_check_object_accepts_any_subtype_of_a_union() -> None:
    """A ChatMember may be any of its subtypes; a broken one reports the nearest subtype."""
    user = {"id": 1, "is_bot": False, "first_name": "A"}
    assert SPEC.check_object("ChatMember", {"status": "left", "user": user}) == ()
    assert kinds(SPEC.check_object("ChatMember", {"status": "left"})) == [("missing_field", "user")]
