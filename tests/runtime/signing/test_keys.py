"""The link-signing key ring: rotation, retirement, revocation, generations, keys.json on disk."""

from __future__ import annotations

import hashlib
import hmac
import json
import stat
import time
from dataclasses import replace

import pytest

from runtime.errors import ConfigError, LinkError
from runtime.signing.keys import KeyFile, KeyRing, load_master_key
from runtime.signing.links import Link, signature, url_of, verify_link

NOW = 1_700_000_000.0


def signed(ring: KeyRing, bot_id: str = "demo", command: str = "stats") -> str:
    """The raw query of a link for user 7 signed by the ring's active key."""
    link = Link(command, 7)
    return url_of("", bot_id, link, signature(ring, bot_id, link)).partition("?")[2]


def status(ring: KeyRing, raw: str, bot_id: str = "demo") -> int:
    """200 when the link verifies, else the LinkError status."""
    try:
        verify_link(ring, bot_id, raw, now=NOW)
    except LinkError as exc:
        return exc.status
    return 200


# -- rotation, retirement, revocation --
def test_rotation_signs_with_a_new_key_and_old_links_keep_working():
    """After a rotation new links use k2 and links signed by k1 still verify."""
    ring = KeyRing.new(NOW)
    old = signed(ring)
    rotated = ring.rotated(NOW + 1)
    new = signed(rotated)
    assert rotated.active.id == "k2"
    assert new.rpartition("sig=")[2].startswith("k2.")
    assert [(k.id, k.state) for k in rotated.keys] == [("k1", "verifying"), ("k2", "active")]
    assert status(rotated, old) == 200
    assert status(rotated, new) == 200


def test_retiring_the_old_key_makes_its_links_expire():
    """Links signed by a retired key are a 410 (expired, to their users); a forgery naming the
    retired key is still a 403; links of the active key still verify."""
    ring = KeyRing.new(NOW)
    old = signed(ring)
    rotated = ring.rotated(NOW + 1)
    new = signed(rotated)
    retired = rotated.retired("k1")
    assert status(retired, old) == 410
    forged = old[:-3] + ("AAA" if not old.endswith("AAA") else "BBB")
    assert status(retired, forged) == 403
    assert status(retired, new) == 200


def test_a_link_signed_after_rotation_fails_on_a_server_that_has_not_seen_it():
    """A key id the ring does not know is a 403, not an error."""
    ring = KeyRing.new(NOW)
    assert status(ring, signed(ring.rotated(NOW))) == 403


@pytest.mark.parametrize(
    ("key_id", "words"),
    [("k1", "active: rotate first"), ("k7", "no key")],
    ids=["active", "unknown"],
)
def test_only_a_known_inactive_key_can_be_retired(key_id, words):
    """Retiring the active key or an unknown one is a ConfigError that says why."""
    with pytest.raises(ConfigError, match=words):
        KeyRing.new(NOW).retired(key_id)


def test_revoking_a_bot_invalidates_only_that_bots_links():
    """A revoked bot's old links are a 403; other bots' links and new links verify."""
    ring = KeyRing.new(NOW)
    demo, other = signed(ring, "demo"), signed(ring, "other")
    revoked = ring.revoked("demo")
    assert revoked.epoch("demo") == 1
    assert revoked.epoch("other") == 0
    assert status(revoked, demo, "demo") == 403
    assert status(revoked, other, "other") == 200
    assert status(revoked, signed(revoked, "demo"), "demo") == 200


def test_revoking_twice_invalidates_the_links_of_the_first_revocation():
    """Every revocation starts a new epoch."""
    once = KeyRing.new(NOW).revoked("demo")
    link = signed(once)
    twice = once.revoked("demo")
    assert twice.epoch("demo") == 2
    assert status(twice, link) == 403


def test_per_bot_keys_differ_by_bot_and_epoch():
    """The derived link key depends on the bot id and its epoch."""
    ring = KeyRing.new(NOW)
    key = ring.active
    assert ring.bot_key(key, "demo") != ring.bot_key(key, "other")
    assert ring.bot_key(key, "demo") != ring.revoked("demo").bot_key(key, "demo")


def test_a_link_of_an_earlier_bot_with_the_same_id_is_refused():
    """A link signed under one generation of ``demo`` is a 403 under any other generation."""
    first = replace(KeyRing.new(NOW), generations={"demo": "generation-one-aaaa"})
    link = signed(first)
    assert status(first, link) == 200
    assert status(replace(first, generations={"demo": "generation-two-bbbb"}), link) == 403
    assert status(replace(first, generations={}), link) == 403


def test_the_empty_generation_derives_keys_as_before_generations_existed():
    """Generation ``""`` (a bot from before the upgrade) keeps its old links working."""
    ring = KeyRing.new(NOW)
    key = ring.active
    legacy = hmac.new(key.secret, b"link\x00demo\x000", hashlib.sha256).digest()
    assert ring.bot_key(key, "demo") == legacy
    assert replace(ring, generations={"demo": ""}).bot_key(key, "demo") == legacy
    assert replace(ring, generations={"demo": "g" * 22}).bot_key(key, "demo") != legacy


def test_a_key_file_hands_its_generations_to_every_ring_it_reads(tmp_path):
    """KeyFile keeps the generations it was given across reloads of keys.json."""
    keyfile = KeyFile(tmp_path / "keys.json", generations={"demo": "g" * 22})
    assert keyfile.load().generations == {"demo": "g" * 22}
    keyfile.save(keyfile.current().rotated(NOW))
    assert keyfile.current().generations == {"demo": "g" * 22}
    assert "g" * 22 not in (tmp_path / "keys.json").read_text()


def test_key_numbers_keep_growing_after_retirement():
    """A rotation after retiring never reuses an id."""
    ring = KeyRing.new(NOW).rotated(NOW).retired("k1").rotated(NOW)
    assert [k.id for k in ring.keys] == ["k1", "k2", "k3"]
    assert ring.active.id == "k3"


# -- exactly one active key --
def test_rotations_always_leave_exactly_one_active_key():
    """However often a ring rotates, one key is active."""
    ring = KeyRing.new(NOW)
    for _ in range(5):
        ring = ring.rotated(NOW)
        assert sum(k.state == "active" for k in ring.keys) == 1


def two_keys(first: str, second: str) -> str:
    """A keys.json text with two keys in the given states."""
    return json.dumps(
        {
            "keys": [
                {"id": "k1", "secret": "11" * 32, "state": first, "created": NOW},
                {"id": "k2", "secret": "22" * 32, "state": second, "created": NOW},
            ]
        }
    )


@pytest.mark.parametrize(
    ("states", "words"),
    [
        (("active", "active"), "exactly one active key"),
        (("verifying", "retired"), "exactly one active key"),
        (("retired", "retired"), "exactly one active key"),
        (("active", "sleeping"), "key state"),
    ],
    ids=["two-active", "none-active", "all-retired", "unknown-state"],
)
def test_a_ring_must_have_exactly_one_active_key(states, words):
    """keys.json with zero or two active keys, or an unknown state, is refused."""
    with pytest.raises(ConfigError, match=words):
        KeyRing.from_json(two_keys(*states))


# -- keys.json on disk --
def test_key_file_is_created_private_and_round_trips(tmp_path):
    """keys.json is made with mode 0600 and reads back exactly what was saved."""
    path = tmp_path / "keys.json"
    keys = KeyFile(path)
    ring = keys.load()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    changed = ring.rotated(NOW).retired("k1").revoked("demo")
    keys.save(changed)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert KeyFile(path).load() == changed
    assert KeyRing.from_json(changed.to_json()) == changed
    assert not [p for p in tmp_path.iterdir() if p.name != "keys.json"]


def test_saving_over_a_world_readable_file_makes_it_private(tmp_path):
    """Saving replaces the file, so a loosened mode does not survive a rotation."""
    path = tmp_path / "keys.json"
    keys = KeyFile(path)
    ring = keys.load()
    path.chmod(0o644)
    keys.save(ring.rotated(NOW))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_master_key_file_is_private_and_stable(tmp_path):
    """master.key is created with mode 0600 and read back unchanged."""
    path = tmp_path / "master.key"
    key = load_master_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_master_key(path) == key
    assert len(key) == 32


GOOD_KEY = {"id": "k1", "secret": "11" * 32, "state": "active", "created": NOW}

CORRUPT = [
    ("not-json", "{nope", "not a valid key ring"),
    ("empty", "", "not a valid key ring"),
    ("a-list", "[]", "not a valid key ring"),
    ("no-keys", "{}", "not a valid key ring"),
    ("keys-not-a-list", '{"keys": 5}', "not a valid key ring"),
    ("key-not-an-object", '{"keys": [5]}', "not a valid key ring"),
    ("secret-not-hex", json.dumps({"keys": [{**GOOD_KEY, "secret": "zz"}]}), "valid key ring"),
    ("secret-missing", json.dumps({"keys": [{**GOOD_KEY, "secret": None}]}), "valid key ring"),
    ("secret-short", json.dumps({"keys": [{**GOOD_KEY, "secret": "11" * 8}]}), "shorter than 16"),
    ("created-not-a-number", json.dumps({"keys": [{**GOOD_KEY, "created": "x"}]}), "valid"),
    (
        "epoch-not-a-number",
        json.dumps({"keys": [GOOD_KEY], "epochs": {"demo": "x"}}),
        "not a valid key ring",
    ),
    ("epochs-not-a-mapping", json.dumps({"keys": [GOOD_KEY], "epochs": []}), "valid key ring"),
    ("key-id-not-k-number", json.dumps({"keys": [{**GOOD_KEY, "id": "main"}]}), "key id"),
    (
        "duplicate-key-ids",
        json.dumps({"keys": [{**GOOD_KEY, "state": "verifying"}, GOOD_KEY]}),
        "k1",
    ),
]


@pytest.mark.parametrize(
    ("text", "words"), [(t, w) for _, t, w in CORRUPT], ids=[i for i, _, _ in CORRUPT]
)
def test_a_corrupt_key_file_is_a_config_error_naming_the_file_and_the_problem(
    tmp_path, text, words
):
    """Loading a damaged keys.json raises ConfigError with the path and what is wrong."""
    path = tmp_path / "keys.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        KeyFile(path).load()
    assert str(path) in str(caught.value)
    assert words in str(caught.value)


# -- re-reading --
def test_key_file_picks_up_a_change_made_by_another_writer(tmp_path):
    """A server's KeyFile sees a CLI rotation once ``check_every`` has passed."""
    path = tmp_path / "keys.json"
    server = KeyFile(path, check_every=0.01)
    ring = server.current()
    KeyFile(path).save(ring.rotated(NOW))
    deadline = time.monotonic() + 5
    while server.current().active.id != "k2":
        assert time.monotonic() < deadline, "the rotation was not picked up within 5 s"
    assert server.current().active.id == "k2"
    assert server.current() is server.current()


def test_key_file_does_not_reread_before_check_every(tmp_path):
    """Between checks the cached ring is used without touching the disk."""
    path = tmp_path / "keys.json"
    server = KeyFile(path, check_every=60)
    ring = server.current()
    KeyFile(path).save(ring.rotated(NOW))
    assert server.current() is ring


def test_key_file_keeps_its_ring_if_the_file_disappears(tmp_path):
    """A missing file between checks does not drop the keys a server is verifying with."""
    path = tmp_path / "keys.json"
    server = KeyFile(path, check_every=0.0)
    ring = server.current()
    path.unlink()
    assert server.current() is ring


def test_a_revocation_by_another_writer_reaches_the_reader(tmp_path):
    """After ``keys revoke`` elsewhere, the reader refuses the bot's old links."""
    path = tmp_path / "keys.json"
    server = KeyFile(path, check_every=0.0)
    link = signed(server.current())
    writer = KeyFile(path)
    writer.save(writer.current().revoked("demo"))
    assert status(server.current(), link) == 403
