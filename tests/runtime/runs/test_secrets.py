"""Masking secrets in the run log (pure, and of a run in-process), and the per-process cache of
a bot's secrets."""

from __future__ import annotations

import json
from pathlib import Path

from runtime.runs.secrets import BotSecrets, Masker
from runtime.signing.sealing import SecretBox
from runtime.store import SqliteStore
from sandbox import WorkerPool
from tests.support.runtime import hosted, wait_until, write_bot


def test_every_whole_occurrence_is_masked_with_the_secrets_name() -> None:
    masker = Masker.of({"STRIPE_KEY": "sk_live_abc123", "TOKEN": "tok-99999999"})
    text = "pay with sk_live_abc123 then sk_live_abc123; token tok-99999999."
    assert masker.text(text) == (
        "pay with [secret STRIPE_KEY] then [secret STRIPE_KEY]; token [secret TOKEN]."
    )


def test_a_secret_inside_a_longer_one_is_masked_as_the_longer_one() -> None:
    masker = Masker.of({"SHORT": "abcdefgh", "LONG": "abcdefgh-and-more"})
    assert masker.text("abcdefgh-and-more / abcdefgh") == "[secret LONG] / [secret SHORT]"


def test_a_secret_is_masked_as_json_escapes_it_too() -> None:
    value = 'quo"te\\back\nline ключ'
    masker = Masker.of({"ODD": value})
    assert masker.text(json.dumps({"k": value})) == '{"k": "[secret ODD]"}'
    assert masker.text(json.dumps({"k": value}, ensure_ascii=False)) == '{"k": "[secret ODD]"}'


def test_values_in_nested_data_and_keys_are_masked() -> None:
    masker = Masker.of({"K": "secret-value-1"})
    data = {"args": ["x secret-value-1"], "kwargs": {"secret-value-1": [{"t": "secret-value-1"}]}}
    assert masker.value(data) == {
        "args": ["x [secret K]"],
        "kwargs": {"[secret K]": [{"t": "[secret K]"}]},
    }


def test_short_values_are_not_masked_and_an_empty_masker_changes_nothing() -> None:
    masker = Masker.of({"PIN": "1234"})
    assert not masker
    assert masker.text("PIN 1234") == "PIN 1234"


def test_a_transformed_secret_is_not_caught(tmp_path: Path) -> None:
    # The documented limit: masking matches the value as it is, not what a script made of it.
    masker = Masker.of({"K": "sk_live_abc123"})
    assert masker.text("sk_live_abc123"[::-1]) == "321cba_evil_ks"
    assert masker.text("SK_LIVE_ABC123") == "SK_LIVE_ABC123"


async def test_the_masker_follows_a_change_within_its_cache_time(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    now = [100.0]
    try:
        secrets = BotSecrets(store, SecretBox(bytes(32)), clock=lambda: now[0])
        assert not await secrets.masker("shop")
        other = BotSecrets(store, SecretBox(bytes(32)))  # another process, same store
        await other.put("shop", "KEY", "value-from-elsewhere", now=1.0)
        assert not await secrets.masker("shop")  # cached: no store read per run
        now[0] += 2.5
        masker = await secrets.masker("shop")
        assert masker.text("x value-from-elsewhere") == "x [secret KEY]"
        # What the run itself read is masked at once, even past the cache.
        fresh = await secrets.masker("shop", {"NEW": "just-read-value"})
        assert fresh.text("just-read-value value-from-elsewhere") == ("[secret NEW] [secret KEY]")
        assert await secrets.get("shop", "KEY") == "value-from-elsewhere"
        assert await secrets.get("blog", "KEY") is None
        assert await secrets.get("shop", "NONE") is None
    finally:
        await store.close()


async def test_a_value_sealed_under_another_master_key_reads_as_missing(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    try:
        await BotSecrets(store, SecretBox(b"a" * 32)).put("shop", "KEY", "old-value-1", now=1.0)
        rotated = BotSecrets(store, SecretBox(b"b" * 32))
        assert await rotated.get("shop", "KEY") is None
        assert not await rotated.masker("shop")
    finally:
        await store.close()


async def test_rekey_seals_again_what_only_the_old_key_opens(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    try:
        old_box, new_box = SecretBox(b"o" * 32), SecretBox(b"n" * 32)
        await BotSecrets(store, old_box).put("shop", "KEY", "value-of-old-1", now=1.0)
        await BotSecrets(store, new_box).put("blog", "KEY", "value-of-new-1", now=1.0)
        await store.put_secret("shop", "JUNK", b"\x01" + bytes(40), now=1.0)
        secrets = BotSecrets(store, new_box)
        assert await secrets.get("shop", "KEY") is None
        done = await secrets.rekey(old_box, now=2.0)
        assert (done.resealed, done.unreadable, done.current) == (["shop/KEY"], ["shop/JUNK"], 1)
        assert await secrets.get("shop", "KEY") == "value-of-old-1"
        assert await secrets.get("blog", "KEY") == "value-of-new-1"
    finally:
        await store.close()


async def test_a_secret_in_a_refused_hosts_name_is_masked_in_extra_http(
    pool: WorkerPool, tmp_path: Path
) -> None:
    """extra.http keeps each hop's host: a host named after a secret (a private hook's name)
    is masked there too (its port is refused before anything is resolved or sent)."""
    script = (
        '"""\ncommand: /hook\n"""\n'
        "try:\n"
        "    HTTP.get('https://' + Secrets.get('HOOK') + '.example.com:1/')\n"
        "except HTTPError as e:\n"
        "    print(e.reason)\n"
    )
    folder = write_bot(tmp_path / "bots", "hooks", {"hook.py": script})
    async with hosted(pool, tmp_path, [folder]) as lab:
        assert lab.services.secrets is not None
        await lab.services.secrets.put("hooks", "HOOK", "hook-7f3a9c2e1b", now=1.0)
        lab.processor.start()
        await lab.post("hooks", 1, "/hook", chat=5)

        async def logged() -> bool:
            await lab.services.runlog.flush()
            return bool(await lab.store.list_runs("hooks"))

        await wait_until(logged, timeout=20, what="the run logged")
        (run,) = await lab.store.list_runs("hooks")
        assert run.output == "refused\n"
        (hop,) = run.extra["http"]  # type: ignore[misc]
        assert hop["host"] == "[secret HOOK].example.com"  # type: ignore[index]
        assert "7f3a9c2e1b" not in json.dumps(run.extra)
