"""The registry: loading bot folders, and every problem of every bot reported in one error."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from runtime.errors import ConfigError, NotFound
from runtime.runs.registry import Registry, bot_folders, derive_secret
from sandbox.compiler import ScriptCache
from tests.support.runtime import write_bot

KEY = b"m" * 32
HELLO = '"""\ncommand: /hello\n"""\nBot.sendMessage("hi")\n'


def load(folders: list[Path], env: dict[str, str] | None = None) -> Registry:
    """Load folders with a fresh script cache and token ``TEST_TOKEN`` set unless told."""
    return Registry.load(
        folders, env={"TEST_TOKEN": "1:x"} if env is None else env, master_key=KEY,
        cache=ScriptCache(),
    )  # fmt: skip


def test_good_folders_load_with_token_secret_and_compiled_scripts(tmp_path: Path) -> None:
    """Each bot gets its token from the environment, a derived secret and compiled scripts."""
    folders = [write_bot(tmp_path, name, {"hello.py": HELLO}) for name in ("one", "two")]
    registry = load(folders)
    assert registry.ids == ["one", "two"] and len(registry) == 2
    one = registry.get("one")
    assert one.token == "1:x"
    assert one.webhook_secret == derive_secret(KEY, "telegram-webhook-secret", "one")
    assert one.webhook_secret != registry.get("two").webhook_secret
    assert set(one.scripts) == {"/hello"}
    with pytest.raises(NotFound, match="no bot 'three' on this server"):
        registry.get("three")


def test_every_problem_of_every_bot_is_listed_in_one_error(tmp_path: Path) -> None:
    """A compile error, a bad webhook setting and a duplicate id are all reported, with files."""
    folders = [
        write_bot(tmp_path, "broken", {"bad.py": '"""\ncommand: /bad\n"""\nx = (\n'}),
        write_bot(tmp_path, "hooks", {"hello.py": HELLO}, yaml="webhook:\n  per_link: lots\n"),
        write_bot(tmp_path, "first", {"hello.py": HELLO}),
        write_bot(tmp_path / "again", "first", {"hello.py": HELLO}),
        write_bot(tmp_path, "fine", {"hello.py": HELLO}),
    ]
    with pytest.raises(ConfigError) as caught:
        load(folders)
    found = caught.value.problems
    messages = [p.describe() for p in found]
    assert len(found) == 3, messages
    assert any(p.file and p.file.endswith("bad.py") and p.line == 4 for p in found)
    assert any(
        p.file == "bot.yaml"
        and p.line is not None
        and p.message == "webhook.per_link must look like 30/60 (clicks per seconds), not 'lots'"
        for p in found
    )
    assert any(
        (p.file or "").endswith("again/first/bot.yaml")
        and f"bot id 'first' is already used by {tmp_path / 'first'}" in p.message
        for p in found
    )


def test_a_bot_without_its_token_loads_and_the_warning_names_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No token: the bot still serves links; the warning names the bot and the variable only."""
    with caplog.at_level(logging.WARNING, logger="runtime.runs.registry"):
        registry = load([write_bot(tmp_path, "quiet", {"hello.py": HELLO})], env={})
    assert registry.get("quiet").token is None
    assert caplog.messages == ["bot quiet has no token: set TEST_TOKEN to let it talk to Telegram"]


def test_bot_folders_lists_the_demo_and_each_folder_with_a_bot_yaml(tmp_path: Path) -> None:
    """Folders without bot.yaml are skipped; a bots dir that is not a folder is a ConfigError."""
    write_bot(tmp_path / "bots", "b", {})
    write_bot(tmp_path / "bots", "a", {})
    (tmp_path / "bots" / "notes").mkdir()
    demo = tmp_path / "demo"
    assert bot_folders(tmp_path / "bots", demo) == [demo, tmp_path / "bots/a", tmp_path / "bots/b"]
    with pytest.raises(ConfigError, match="is not a folder"):
        bot_folders(tmp_path / "missing", None)
