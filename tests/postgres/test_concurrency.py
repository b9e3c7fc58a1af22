"""Several PROCESSES write for the same users at once: every user's pts stays gap-free and
strictly increasing, and every acknowledged message is in every member's log exactly once.

Each group message bumps the pts of all its members: the writers contend on the same
``users`` rows, in orders that can deadlock; PostgreSQL breaks the cycle and the store runs
the refused job again on its own (postgres_engine: a failed batch fails nobody else)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from pigeon.protocol import updates as up
from pigeon.store.postgres import PostgresStore

WRITER = Path(__file__).with_name("pts_writer.py")
PROCESSES = 3
EACH = 40


async def full_difference(store: PostgresStore, user_id: int) -> list[up.AnyUpdate]:
    out: list[up.AnyUpdate] = []
    pts = 0
    while True:
        diff = await store.get_difference(user_id, pts, 500)
        out += diff.updates
        if not diff.more:
            return out
        pts = diff.state.pts


async def _run_writers(pg_url: str, sends: list[tuple[int, int]]) -> int:
    """One writer process per (sender, chat), each sending EACH messages, all started at once;
    how many sends they did together, in all."""
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, str(WRITER), pg_url, str(sender), str(chat), str(EACH),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
        for sender, chat in sends]
    for proc in procs:  # every writer has its store open ...
        assert proc.stdout is not None and proc.stderr is not None
        if await proc.stdout.readline() != b"ready\n":
            raise AssertionError((await proc.stderr.read()).decode()[-2000:])
    outputs = await asyncio.gather(*(p.communicate(b"go\n") for p in procs))  # ... go
    together = 0
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()[-2000:]
        acknowledged, done_together = out.decode().split()
        assert acknowledged == str(EACH)
        together += int(done_together)
    return together


async def _assert_dense(store: PostgresStore, user: int, messages: int) -> None:
    updates = await full_difference(store, user)
    assert [u.pts for u in updates] == list(range(1, len(updates) + 1))
    assert (await store.get_state(user)).pts == len(updates)
    texts = [u.message.text for u in updates if isinstance(u, up.NewMessage)]
    assert len(texts) == len(set(texts)) == messages


async def test_writers_in_separate_processes_keep_each_users_pts_dense(pg_url: str) -> None:
    store = PostgresStore(pg_url, readers=1)
    await store.open()
    try:
        users = [(await store.create_user(f"+1555010{i:04d}", f"u{i}", 1.0)).id
                 for i in range(PROCESSES + 1)]
        group, _ = await store.create_group(users[0], "G", users[1:], 1.0, 100)
        await _run_writers(pg_url, [(sender, group.id) for sender in users[1:]])
        sent = PROCESSES * EACH
        for user in users:
            await _assert_dense(store, user, sent)
        history = await store.history(users[0], group.id, None, 1000)
        assert sorted(m.id for m in history) == list(range(1, sent + 1))
    finally:
        await store.close()


async def test_private_sends_done_together_in_separate_processes_stay_dense(
        pg_url: str) -> None:
    """One person talking with three at once, each conversation written by processes of its
    own, and one of them by both sides at once: runs of sends done together
    (store/postgres_bulk.py) in several processes still give each user a gap-free log, and
    each chat gap-free message ids."""
    store = PostgresStore(pg_url, readers=1)
    await store.open()
    try:
        hub, *others = [(await store.create_user(f"+1555011{i:04d}", f"u{i}", 1.0)).id
                        for i in range(PROCESSES + 1)]
        chats = [(await store.open_private(other, hub, 1.0)).id for other in others]
        together = await _run_writers(pg_url, [*zip(others, chats, strict=True),
                                               (hub, chats[0])])
        assert together > 0
        await _assert_dense(store, hub, (PROCESSES + 1) * EACH)
        await _assert_dense(store, others[0], 2 * EACH)
        for other in others[1:]:
            await _assert_dense(store, other, EACH)
        for chat, written in zip(chats, [2 * EACH] + [EACH] * (PROCESSES - 1), strict=True):
            history = await store.history(hub, chat, None, 1000)
            assert sorted(m.id for m in history) == list(range(1, written + 1))
    finally:
        await store.close()
