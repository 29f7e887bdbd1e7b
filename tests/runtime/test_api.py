"""The runtime package's public API is pinned."""

from __future__ import annotations

import subprocess
import sys

import runtime


def test_the_public_api_is_exactly_what_init_names():
    """Every public name is exported on purpose; a change here is an API change."""
    assert sorted(runtime.__all__) == sorted(
        [
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
    )
    for name in runtime.__all__:
        assert getattr(runtime, name) is not None


def test_importing_the_runtime_does_not_load_the_web_stack():
    """CLI tools (check, logs, url, keys) start without importing Sanic."""
    done = subprocess.run(
        [sys.executable, "-c", "import runtime, sys; print('sanic' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "False"
