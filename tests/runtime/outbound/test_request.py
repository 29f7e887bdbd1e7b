"""A script's HTTP.* arguments read into a request, every mistake a bad_request error."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.errors import OutboundError
from runtime.outbound.policy import HttpPolicy
from runtime.outbound.request import build_request

RULES = HttpPolicy(timeout=10.0)


def build(called: str, *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
    return build_request(called, args, kwargs, RULES)


def test_get_takes_the_url_and_appends_params_to_its_query() -> None:
    request = build("get", "https://x.test/a?b=1#frag", params={"q": "a b", "n": [1, 2], "t": True})
    assert (request.method, request.url, request.body) == (
        "GET",
        "https://x.test/a?b=1&q=a+b&n=1&n=2&t=true",
        None,
    )
    assert request.timeout == 10.0


def test_post_sends_json_text_or_a_form_with_a_content_type_unless_given() -> None:
    as_json = build("post", "https://x.test/", json={"a": [1, "é"]})
    assert as_json.body == '{"a": [1, "é"]}'.encode()
    assert ("Content-Type", "application/json") in as_json.headers
    as_text = build("post", "https://x.test/", data="hi", headers={"Content-Type": "text/csv"})
    assert as_text.body == b"hi"
    assert as_text.headers == (("Content-Type", "text/csv"),)
    as_form = build("post", "https://x.test/", data={"a": "1", "b": 2})
    assert as_form.body == b"a=1&b=2"
    assert ("Content-Type", "application/x-www-form-urlencoded") in as_form.headers


def test_request_takes_the_method_first_in_any_case() -> None:
    assert build("request", "patch", "https://x.test/").method == "PATCH"
    assert build("request", method="DELETE", url="https://x.test/").method == "DELETE"


@pytest.mark.parametrize(
    ("called", "args", "kwargs", "match"),
    [
        ("get", (), {}, "the URL must be text"),
        ("get", (5,), {}, "the URL must be text"),
        ("get", ("https://x.test/",), {"url": "https://y.test/"}, "url given twice"),
        ("get", ("https://x.test/", {"a": 1}), {}, "too many positional"),
        ("get", ("https://x.test/",), {"verify": False}, "unknown argument"),
        ("request", ("TRACE", "https://x.test/"), {}, "the method must be one of"),
        ("request", (), {"url": "https://x.test/"}, "the method must be one of"),
        ("post", ("https://x.test/",), {"json": {}, "data": "x"}, "json or data"),
        ("post", ("https://x.test/",), {"data": 5}, "data must be text or a dict"),
        ("get", ("https://x.test/",), {"params": "a=1"}, "params must be a dict"),
        ("get", ("https://x.test/",), {"headers": {"Host": "evil"}}, "set by the platform"),
        ("get", ("https://x.test/",), {"headers": {"X": "a\r\nB: c"}}, "line break"),
        ("get", ("https://x.test/",), {"headers": {"bad name": "1"}}, "not a header name"),
        ("get", ("https://x.test/",), {"headers": {"X": ["a"]}}, "header values must be"),
        ("get", ("https://x.test/",), {"timeout": 11}, "at most 10"),
        ("get", ("https://x.test/",), {"timeout": 0}, "above 0"),
    ],
)
def test_a_wrong_argument_is_a_bad_request_naming_it(
    called: str, args: tuple[Any, ...], kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(OutboundError, match=match) as caught:
        build_request(called, args, kwargs, RULES)
    assert caught.value.reason == "bad_request"


def test_a_header_value_never_appears_in_an_error() -> None:
    with pytest.raises(OutboundError) as caught:
        build("get", "https://x.test/", headers={"Authorization": "Bearer s3cret\n"})
    assert "s3cret" not in caught.value.message


@pytest.mark.parametrize("value", ["caf\u00e9", "a\u2028b", "a\x0bb", "a\x7fb"])
def test_a_header_value_the_wire_cannot_carry_is_a_bad_request(value: str) -> None:
    # Not a crash inside the host (httpx encodes header values as ASCII; h11 refuses controls).
    with pytest.raises(OutboundError, match="printable ASCII") as caught:
        build("get", "https://x.test/", headers={"X-Note": value})
    assert caught.value.reason == "bad_request"
    assert value not in caught.value.message
