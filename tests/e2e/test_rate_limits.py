"""Per-user and per-bot click limits, counted in the store, refuse with 429 and run nothing."""

from __future__ import annotations

import time

from tests.support.links import mint
from tests.support.server import BotboxServer

BOT_YAML = (
    "id: rl\ntoken_env: RL_TOKEN\nwebhook:\n  per_link: 100/60\n  per_user: 2/60\n  per_bot: 6/60\n"
)


def test_user_and_bot_limits_refuse_clicks_beyond_them(tmp_path):
    """A user's third link is refused (user limit); the bot's seventh click is refused (bot)."""
    folder = tmp_path / "bots" / "rl"
    folder.mkdir(parents=True)
    (folder / "bot.yaml").write_text(BOT_YAML)
    (folder / "ping.py").write_text('"""\ncommand: ping\n"""\nres.text("pong")\n')
    server = BotboxServer(
        tmp_path / "data", telegram_api="http://127.0.0.1:9", bots_dir=tmp_path / "bots", demo=False
    ).start()
    try:
        if time.time() % 60 > 50:  # the windows are fixed minutes: stay inside one
            time.sleep(61 - time.time() % 60)

        def click(user: int, n: int):
            url = mint(server.data_dir, "ping", bot_id="rl", user_id=user, params={"n": n})
            return server.client.get(url)

        first_user = [click(1, n) for n in range(3)]
        assert [r.status_code for r in first_user] == [200, 200, 429]
        assert "user limit" in first_user[2].json()["message"]
        others = [click(user, 0) for user in (2, 3, 4)]  # bot clicks 4, 5, 6
        assert [r.status_code for r in others] == [200, 200, 200]
        refused = click(5, 0)
        assert refused.status_code == 429
        assert "bot limit" in refused.json()["message"]
        assert refused.headers["retry-after"] == "60"
        assert len(server.logs("rl")) == 5
    finally:
        server.close()
