"""Pure token and role logic: what a role may do with a bot, and the order of refusals."""

from __future__ import annotations

from runtime.api import auth
from runtime.store import Principal


def who(role: str, **grants: str) -> Principal:
    return Principal(1, "x", role, 1, dict(grants))  # type: ignore[arg-type]


def test_a_token_is_random_shown_once_and_kept_as_its_sha256() -> None:
    one, two = auth.new_token(), auth.new_token()
    assert one.secret != two.secret and one.secret.startswith("bbx_")
    assert len(one.secret) == 4 + 43  # 32 random bytes, URL-safe
    assert one.prefix == one.secret[:12] and one.digest == auth.digest(one.secret)
    assert len(one.digest) == 64 and one.secret not in one.digest


def test_only_a_bearer_header_carries_a_token() -> None:
    assert auth.bearer("Bearer abc") == "abc"
    assert auth.bearer("bearer   abc ") == "abc"
    assert auth.bearer("Basic abc") is None
    assert auth.bearer("Bearer") is None
    assert auth.bearer("Bearer a b") is None
    assert auth.bearer(None) is None


def test_an_admin_writes_every_bot_and_others_only_what_they_were_granted() -> None:
    assert auth.bot_access(who("admin"), "any") == "write"
    assert auth.bot_access(who("author", shop="author"), "shop") == "write"
    assert auth.bot_access(who("author", shop="viewer"), "shop") == "read"
    assert auth.bot_access(who("viewer", shop="author"), "shop") == "read"
    assert auth.bot_access(who("author", shop="author"), "blog") is None


def test_a_hidden_bot_is_hidden_before_a_missing_role_is_told() -> None:
    author = who("author", shop="author")
    viewer = who("viewer", shop="viewer")
    assert auth.decide(author, "write", "blog", exists=True) == "hidden"
    assert auth.decide(author, "admin-bot", "blog", exists=True) == "hidden"
    assert auth.decide(author, "admin-bot", "shop", exists=True) == "forbidden"
    assert auth.decide(viewer, "write", "shop", exists=True) == "forbidden"
    assert auth.decide(viewer, "read", "shop", exists=True) == "ok"
    assert auth.decide(who("admin"), "read", "gone", exists=False) == "hidden"
    assert auth.decide(author, "admin", None, exists=False) == "forbidden"
    assert auth.decide(author, "any", None, exists=False) == "ok"


def test_an_admin_only_operation_on_a_bot_path_is_refused_to_the_bots_own_author() -> None:
    # An operation declared need="admin" whose path names {bot_id} (a lifecycle endpoint,
    # say) must stay admin-only: the author's write access to the bot is not the admin role.
    author = who("author", shop="author")
    viewer = who("viewer", shop="viewer")
    assert auth.decide(author, "admin", "shop", exists=True) == "forbidden"
    assert auth.decide(viewer, "admin", "shop", exists=True) == "forbidden"
    assert auth.decide(author, "admin", "blog", exists=True) == "hidden"
    assert auth.decide(who("admin"), "admin", "shop", exists=True) == "ok"
