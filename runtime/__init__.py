"""The botbox runtime: bots as folders of command scripts, run in the sandbox.

The web application is built by :func:`runtime.web.app.create_app` (kept out of this module so the
command-line tools load without the web stack). Public API:
"""

from runtime.bots.config import BotConfig
from runtime.bots.folder import BotDefinition, check_bot, load_bot
from runtime.errors import (
    ApiError,
    BotboxError,
    BotFolderError,
    CallRefused,
    ConfigError,
    LinkError,
    NotFound,
    Problem,
    QuotaExceeded,
    StoreError,
    TelegramError,
    TransportError,
)
from runtime.settings import Settings
from runtime.signing.keys import KeyFile, KeyRing
from runtime.signing.links import Link, make_link, verify_link

__all__ = [
    "ApiError",
    "BotConfig",
    "BotDefinition",
    "BotFolderError",
    "BotboxError",
    "CallRefused",
    "ConfigError",
    "KeyFile",
    "KeyRing",
    "Link",
    "LinkError",
    "NotFound",
    "Problem",
    "QuotaExceeded",
    "Settings",
    "StoreError",
    "TelegramError",
    "TransportError",
    "check_bot",
    "load_bot",
    "make_link",
    "verify_link",
]
