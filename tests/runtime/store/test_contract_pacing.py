"""The Store contract for send pacing: reservations in exact sliding windows and pauses, shared
by processes. Runs against every store of ``test_contract.STORE_FACTORIES``."""

from __future__ import annotations

from pathlib import Path

from runtime.store import Store, Window
from tests.runtime.store.children import at_once
from tests.runtime.store.test_pacing import fits

BOT = "bot-a"
NOW = 1_000_000.0
BOT_WINDOW = Window("bot", 30, 1.0)


def chat(n: int) -> Window:
    """One chat's window: one send a second."""
    return Window(f"chat:{n}", 1, 1.0)


CHILD_PACER = """
import asyncio, json, sys
from runtime.store import Window
ARG = sys.argv[1]
{opener}

async def main():
    await store.open()
    print("ready", flush=True)
    sys.stdin.readline()
    times = []
    for i in range(int(sys.argv[2])):
        windows = [Window("bot", 30, 1.0), Window("chat:%d" % (i % 3), 1, 1.0)]
        times.append((i % 3, await store.reserve_send(
            "bot-a", windows, ["bot"], now=1000000.0, horizon=600.0)))
    await store.close()
    print(json.dumps(times), flush=True)

asyncio.run(main())
"""


async def test_sends_to_one_chat_are_reserved_a_second_apart(store: Store) -> None:
    """Three reservations at the same moment: now, now + 1, now + 2."""
    got = [
        await store.reserve_send(BOT, [BOT_WINDOW, chat(1)], ["bot"], now=NOW, horizon=60)
        for _ in range(3)
    ]
    assert got == [NOW, NOW + 1, NOW + 2]


async def test_another_chat_is_not_held_by_a_busy_one(store: Store) -> None:
    """Chat 2's first send goes at once while chat 1 has reservations queued."""
    for _ in range(5):
        await store.reserve_send(BOT, [BOT_WINDOW, chat(1)], [], now=NOW, horizon=60)
    assert await store.reserve_send(BOT, [BOT_WINDOW, chat(2)], [], now=NOW, horizon=60) == NOW


async def test_a_reservation_past_the_horizon_is_refused_and_writes_nothing(store: Store) -> None:
    """None beyond the horizon; the next one within it gets the slot the refused one would have."""
    assert await store.reserve_send(BOT, [chat(1)], [], now=NOW, horizon=5) == NOW
    assert await store.reserve_send(BOT, [chat(1)], [], now=NOW, horizon=0.5) is None
    assert await store.reserve_send(BOT, [chat(1)], [], now=NOW, horizon=5) == NOW + 1


async def test_a_pause_holds_only_its_own_key(store: Store) -> None:
    """A 429 for chat 1 pauses chat 1; chat 2 and the bot's other sends go on."""
    await store.pause_sends(BOT, "chat:1", until=NOW + 7, now=NOW)
    assert (
        await store.reserve_send(BOT, [chat(1)], ["bot", "chat:1"], now=NOW, horizon=60) == NOW + 7
    )
    assert await store.reserve_send(BOT, [chat(2)], ["bot", "chat:2"], now=NOW, horizon=60) == NOW
    assert await store.reserve_send("bot-b", [chat(1)], ["chat:1"], now=NOW, horizon=60) == NOW


async def test_a_shorter_pause_never_shortens_a_longer_one(store: Store) -> None:
    """The later end wins; a pause that ended holds nothing."""
    await store.pause_sends(BOT, "bot", until=NOW + 10, now=NOW)
    await store.pause_sends(BOT, "bot", until=NOW + 3, now=NOW)
    assert await store.reserve_send(BOT, [chat(1)], ["bot"], now=NOW, horizon=60) == NOW + 10
    assert await store.reserve_send(BOT, [chat(2)], ["bot"], now=NOW + 20, horizon=60) == NOW + 20


async def test_slots_that_left_their_window_are_forgotten(store: Store) -> None:
    """A chat idle for longer than its window starts again at once."""
    for _ in range(3):
        await store.reserve_send(BOT, [chat(1)], [], now=NOW, horizon=60)
    assert await store.reserve_send(BOT, [chat(1)], [], now=NOW + 100, horizon=60) == NOW + 100


async def test_three_processes_reserving_at_once_never_share_a_slot(
    store: Store, backend: str, tmp_path: Path
) -> None:
    """Three processes reserve 39 sends each over three chats at the same moment: every chat's
    sends are a second apart, and the bot never passes 30 in any second."""
    reserved: list[tuple[int, float]] = []
    for result in await at_once(backend, tmp_path, CHILD_PACER, [["39"]] * 3):
        reserved += [(c, t) for c, t in result]  # type: ignore[attr-defined]
    assert len(reserved) == 117
    for n in range(3):
        times = sorted(t for c, t in reserved if c == n)
        assert len(times) == 39
        assert fits(times, chat(n))
        assert times[0] == NOW and times[-1] == NOW + 38
    assert fits([t for _, t in reserved], BOT_WINDOW)
