"""The pages an end user sees after clicking a bot's link, in the bot's colours (pure).

Each page is written for the person who clicked, not for the bot's author: "This link has
expired", never "signature does not match" (the precise reason stays in the JSON answer and the
run log). A bot brands them with ``pages:`` in ``bot.yaml`` (:class:`PageBranding`: a title, a
short text, a link back to the bot); every branded field is HTML-escaped here, and the link is
already limited to http(s) and tg:// URLs by the config check.

Kinds: ``done``, ``expired``, ``used``, ``forbidden``, ``gone`` (the link's command no longer
exists), ``rate_limited``, ``busy``, ``error``, and ``preview`` (what link-preview fetchers such
as Telegram's get: a harmless page with Open Graph tags; nothing runs and no one-time link is
used up).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Final

from runtime.bots.config import PageBranding


@dataclass(frozen=True, slots=True)
class PageText:
    """What one kind of page says."""

    heading: str
    message: str


PAGES: Final[dict[str, PageText]] = {
    "done": PageText("Done \u2713", "You can go back to Telegram now."),
    "expired": PageText("This link has expired", "Ask the bot for a new link."),
    "used": PageText(
        "This link was already used",
        "It worked once and cannot be used again. Ask the bot for a new link.",
    ),
    "forbidden": PageText(
        "This link is not valid",
        "It may have been cut short or changed when it was copied. Ask the bot for a new link.",
    ),
    "gone": PageText("This link no longer works", "Ask the bot for a new link."),
    "rate_limited": PageText("Too many tries", "Please wait a minute, then try again."),
    "busy": PageText("The bot is busy", "Please try again in a moment."),
    "error": PageText(
        "Something went wrong", "The bot could not finish this. Please try again later."
    ),
    "preview": PageText(
        "A link for a Telegram bot", "This is a link for a Telegram bot. Open it to continue."
    ),
}
STYLE: Final = (
    "body{font-family:system-ui,sans-serif;max-width:32em;margin:4em auto;padding:0 1em;"
    "color:#222}.brand{color:#666;font-size:.95em}.note{color:#444}a{color:#2a6ebb}"
)


def kind_for(status: int, code: str) -> str:
    """The page kind for an error the click path raised (its status and code)."""
    if status == 410:
        return "used" if code == "used" else "expired"
    if status in (400, 403, 413):
        return "forbidden"
    if status == 404:
        return "gone"
    if status == 429:
        return "rate_limited"
    if status == 503:
        return "busy"
    return "error"


def render(kind: str, branding: PageBranding | None) -> str:
    """The HTML page of one kind, branded (every branded field escaped)."""
    text = PAGES[kind]
    esc = html.escape
    title = branding.title if branding is not None else ""
    heading = text.heading if kind != "preview" or not title else title
    page_title = f"{heading} \u00b7 {title}" if title and heading != title else heading
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<meta name=viewport content='width=device-width,initial-scale=1'>",
        "<meta name=robots content=noindex>",
        f"<title>{esc(page_title)}</title>",
    ]
    if kind == "preview":
        description = (branding.text if branding is not None else "") or text.message
        parts.append(f'<meta property="og:title" content="{esc(heading)}">')
        parts.append(f'<meta property="og:description" content="{esc(description)}">')
    parts.append(f"<style>{STYLE}</style></head><body>")
    if title and heading != title:
        parts.append(f"<p class=brand>{esc(title)}</p>")
    parts.append(f"<h1>{esc(heading)}</h1><p>{esc(text.message)}</p>")
    if branding is not None and branding.text:
        parts.append(f"<p class=note>{esc(branding.text)}</p>")
    if branding is not None and branding.link:
        label = f"Back to {title}" if title else "Back to the bot"
        parts.append(f'<p><a href="{esc(branding.link)}">{esc(label)}</a></p>')
    parts.append("</body></html>")
    return "".join(parts)


__all__ = ["PAGES", "kind_for", "render"]
