"""The end-user pages (pure): one per outcome, every branded field escaped."""

from __future__ import annotations

import pytest

from runtime.bots.config import PageBranding
from runtime.web.pages import PAGES, kind_for, render

HOSTILE = PageBranding(
    title='"><img src=x onerror=alert(1)>',
    text="</p><script>steal()</script>",
    link='https://example.test/?a="><script>x()</script>',
)


@pytest.mark.parametrize("kind", sorted(PAGES))
def test_no_branded_field_reaches_the_page_unescaped(kind: str) -> None:
    page = render(kind, HOSTILE)
    assert "<img" not in page and "<script>" not in page and 'a=">' not in page
    assert "&lt;script&gt;steal()&lt;/script&gt;" in page
    assert PAGES[kind].message.replace("'", "&#x27;") in page


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (410, "expired", "expired"),
        (410, "used", "used"),
        (403, "forbidden", "forbidden"),
        (400, "bad_request", "forbidden"),
        (413, "too_large", "forbidden"),
        (404, "not_found", "gone"),
        (429, "too_many_requests", "rate_limited"),
        (503, "busy", "busy"),
        (500, "something_went_wrong", "error"),
    ],
)
def test_each_refusal_maps_to_a_page_for_people(status: int, code: str, kind: str) -> None:
    assert kind_for(status, code) == kind


def test_an_unbranded_page_still_reads_well() -> None:
    page = render("expired", None)
    assert "<title>This link has expired</title>" in page and "Back to" not in page
