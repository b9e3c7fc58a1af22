"""The shield's state shared by workers over NATS (issue 12, deliverable 4): an attacker
spread over several workers gains nothing, bans reach every worker and close what they shut
out there, and without NATS each worker still limits on its own."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from nats_support import NatsServer, free_port, nats_server

from pigeon.shield.codebudget import AdaptiveBudget
from pigeon.shield.penalties import Penalties
from pigeon.shield.ratelimit import Rate
from pigeon.shield.shared import NatsShieldState

SECRET = b"k" * 32


async def until(done: Callable[[], bool], what: str) -> None:
    for _ in range(500):
        if done():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def spread(*states: NatsShieldState) -> None:
    """Each worker publishes what it changed; wait until every other one applied it."""
    seen = [s.stats["frames_in"] for s in states]
    sent = []
    for state in states:
        before = state.stats["frames_out"]
        await state.flush()
        sent.append(state.stats["frames_out"] - before)
    for i, state in enumerate(states):
        expect = seen[i] + sum(n for j, n in enumerate(sent) if j != i)
        await until(lambda s=state, e=expect: s.stats["frames_in"] >= e, "frames applied")


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[list[NatsShieldState]]:
    with nats_server(tmp_path) as server:
        prefix = f"t{secrets.token_hex(4)}"
        # flush_every long: the test decides when changes spread (spread()), not a timer
        states = [NatsShieldState(server.url, prefix, SECRET, flush_every=3600)
                  for _ in range(3)]
        for state in states:
            await state.start()
        await until(lambda: all(s.connected for s in states), "connected")
        await asyncio.sleep(0.05)  # subscriptions made
        for state in states:
            assert state._nc is not None
            await state._nc.flush()
        try:
            yield states
        finally:
            for state in states:
                await state.stop()


async def test_a_limit_spread_over_workers_is_one_limit(workers) -> None:
    rate = Rate.parse("10/1h burst 10")
    limiters = [w.limiter("code_address", rate) for w in workers]
    granted = 0
    # An attacker's requests from one address, round-robin over three workers, spreading
    # what each spent after every round.
    for _ in range(10):
        for limiter in limiters:
            granted += limiter.take("198.51.100.7") == 0
        await spread(*workers)
    # Without sharing: 30 (each worker's own burst). Shared: the one burst of 10, plus at
    # most what the workers handed out in the same round before hearing of each other.
    assert granted <= 10 + 2
    assert all(limiter.take("198.51.100.7") > 0 for limiter in limiters)


async def test_strikes_on_several_workers_ban_everywhere_and_close_connections(workers) -> None:
    settings = SimpleNamespace(ban_strikes=6, ban_window=60.0, ban_seconds=600.0,
                               ban_account_sessions=3, ban_shared_window=3600.0,
                               ban_door_rate="1/1s burst 5", max_known_addresses=100)
    penalties = [Penalties(settings, state=w) for w in workers]
    closed: list[tuple[int, str]] = []
    for i, p in enumerate(penalties):
        p.on_address_ban = lambda address, i=i: closed.append((i, address))
    for _ in range(2):  # two strikes on each worker: six in all
        for p in penalties:
            p.strike("203.0.113.9", "bad_frame")
    await spread(*workers)
    assert all(p.addresses.banned("203.0.113.9") > 0 for p in penalties)
    assert sorted(i for i, _ in closed) == [0, 1, 2]  # every worker closed its own


async def test_a_manual_ban_and_unban_reach_every_worker(workers) -> None:
    settings = SimpleNamespace(ban_strikes=20, ban_window=60.0, ban_seconds=600.0,
                               ban_account_sessions=3, ban_shared_window=3600.0,
                               ban_door_rate="1/1s burst 5", max_known_addresses=100)
    penalties = [Penalties(settings, state=w) for w in workers]
    sessions_closed: list[int] = []
    penalties[2].on_session_ban = lambda sid, seconds: sessions_closed.append(sid)
    penalties[0].addresses.ban("192.0.2.0/24", 300, "operator")
    penalties[0].sessions.ban("session:42", 300, "operator")
    await spread(*workers)
    assert penalties[1].addresses.banned("192.0.2.55") > 0
    assert sessions_closed == [42]
    penalties[1].addresses.unban("192.0.2.0/24")
    await spread(*workers)
    assert all(p.addresses.banned("192.0.2.55") == 0 for p in penalties)


async def test_known_addresses_spent_proofs_and_code_budgets_are_shared(workers) -> None:
    a, b, _ = workers
    a.known.remember("198.51.100.20")
    expires = time.time() + 60
    assert a.replay.spend(b"mac-1", expires, time.time())

    def make() -> AdaptiveBudget:
        return AdaptiveBudget(Rate.parse("3/1m burst 3"), open_share=1.0)

    budgets = [w.budget("code_country", make) for w in workers]
    budgets[0].spend("49", proven=False)
    budgets[0].spend("49", proven=False)
    budgets[1].spend("49", proven=False)
    await spread(*workers)
    assert "198.51.100.20" in b.known
    assert not b.replay.spend(b"mac-1", expires, time.time())  # a replay on another worker
    assert all(budget.check("49", proven=True) is not None for budget in budgets)


async def test_without_nats_each_worker_still_limits_on_its_own(tmp_path: Path) -> None:
    server = NatsServer(tmp_path, free_port())  # never started
    state = NatsShieldState(server.url, "t", SECRET, flush_every=0.01)
    await state.start()
    try:
        limiter = state.limiter("session", Rate.parse("5/1h burst 5"))
        assert sum(limiter.take("s1") == 0 for _ in range(20)) == 5
        # nothing piles up meanwhile: with nobody to tell, changes are let go
        await until(lambda: not state._pending, "changes let go")
        assert not state.connected
    finally:
        await state.stop()
