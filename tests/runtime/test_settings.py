"""Settings.from_env: the one place configuration is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.errors import ConfigError
from runtime.settings import PACKAGED_DEMO, PROJECT_ROOT, Settings, demo_folder


def test_defaults_need_no_environment():
    """With no BOTBOX_ variables the server listens locally and keeps data in ./data."""
    settings = Settings.from_env({"HOME": "/root", "PATH": "/bin"})
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.base_url == "http://127.0.0.1:8080"
    assert settings.database == Path("data") / "botbox.sqlite3"
    assert settings.demo is True


def test_values_are_parsed_and_the_public_url_drives_links():
    """Typed values are parsed; BOTBOX_PUBLIC_URL replaces host:port in links."""
    settings = Settings.from_env(
        {
            "BOTBOX_PORT": "9000",
            "BOTBOX_DEMO": "off",
            "BOTBOX_PUBLIC_URL": "https://b.example/",
            "BOTBOX_SANDBOX_WORKERS": "3",
            "BOTBOX_SANDBOX_MAX_WORKERS": "5",
            "BOTBOX_SQLITE_SYNCHRONOUS": "normal",
            "BOTBOX_LEASE_SECONDS": "2.5",
            "BOTBOX_BOTS_DIR": "/srv/bots",
        }
    )
    assert settings.port == 9000
    assert settings.demo is False
    assert settings.base_url == "https://b.example"
    assert settings.sandbox_workers == 3
    assert settings.sandbox_max_workers == 5
    assert settings.sqlite_synchronous == "NORMAL"
    assert settings.lease_seconds == 2.5
    assert settings.bots_dir == Path("/srv/bots")


def test_every_bad_key_is_named_in_one_error():
    """Bad values and unknown BOTBOX_ keys are all reported together."""
    with pytest.raises(ConfigError) as error:
        Settings.from_env(
            {
                "BOTBOX_PORT": "99999",
                "BOTBOX_DEMO": "maybe",
                "BOTBOX_PUBLIC_URL": "ftp://x",
                "BOTBOX_TYPO": "1",
            }
        )
    message = str(error.value)
    for fragment in (
        "BOTBOX_PORT",
        "BOTBOX_DEMO",
        "BOTBOX_PUBLIC_URL",
        "unknown setting BOTBOX_TYPO",
    ):
        assert fragment in message
    assert len(error.value.problems) == 4


@pytest.mark.parametrize("level", ["LOUD", "", "20"], ids=["unknown-name", "empty", "number"])
def test_a_log_level_logging_does_not_know_is_a_settings_error(level):
    """BOTBOX_LOG_LEVEL must be a level name; anything else is named like any bad setting."""
    with pytest.raises(ConfigError, match=r"BOTBOX_LOG_LEVEL=.*expected one of DEBUG, INFO"):
        Settings.from_env({"BOTBOX_LOG_LEVEL": level})
    assert Settings.from_env({"BOTBOX_LOG_LEVEL": " warning "}).log_level == "WARNING"


def test_a_checkout_hosts_the_demo_bot_from_commands():
    """Without a wheel's packaged copy, the demo bot is read from commands/ (data, not code)."""
    assert not PACKAGED_DEMO.exists()  # a source checkout: setup.py only copies into wheels
    assert demo_folder() == PROJECT_ROOT / "commands"
    assert (demo_folder() / "bot.yaml").is_file()
    assert Settings.from_env({}).demo_dir == demo_folder()


def test_the_schedule_tick_defaults_to_a_second_and_must_be_positive_seconds():
    assert Settings.from_env({}).schedule_tick == 1.0
    assert Settings.from_env({"BOTBOX_SCHEDULE_TICK": "0.1"}).schedule_tick == 0.1
    with pytest.raises(ConfigError, match="BOTBOX_SCHEDULE_TICK='0'"):
        Settings.from_env({"BOTBOX_SCHEDULE_TICK": "0"})
