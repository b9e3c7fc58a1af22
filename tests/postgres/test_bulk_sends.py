"""Sends done together on PostgreSQL (store/postgres_bulk.py) decide exactly what the same
sends decide one by one: the same calls, queued in one go on PostgreSQL (one writer: one
batch, in order) and on SQLite (which runs them one by one), give the same answers, the
same pushes and the same update logs, whatever mix of private messages, replies, replays,
refusals, first contacts, blocked senders, groups and reads they are."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pigeon import testing_postgres as pg
from pigeon.protocol import updates as up
from pigeon.protocol.errors import PigeonError
from pigeon.store import SqliteStore, Store
from pigeon.store.postgres import PostgresStore

NOW = 1_700_000_000.0
USERS = 4  # 0, 1, 2 talk; 3 is in none of their private chats
CHATS = ("01", "02", "12", "group")


@asynccontextmanager
async def _stores(directory: Path) -> AsyncIterator[tuple[Store, PostgresStore]]:
    await pg.require_postgres()
    name = await pg.lease_database()
    lite = SqliteStore(directory / "pigeon.db")
    postgres = PostgresStore(pg.url_for(name), readers=1, writers=1)
    await lite.open()
    await postgres.open()
    try:
        yield lite, postgres
    finally:
        await lite.close()
        await postgres.close()
        await pg.return_database(name)


async def _prepare(store: Store) -> tuple[list[int], dict[str, int]]:
    """The same people and chats on either store: 0 and 1 have written to each other, 2 has
    written to nobody, 2 blocked 1, and the three share a group."""
    users = [(await store.create_user(f"+1555077{i:04d}", f"u{i}", NOW)).id
             for i in range(USERS)]
    chats = {
        "01": (await store.open_private(users[0], users[1], NOW)).id,
        "02": (await store.open_private(users[0], users[2], NOW)).id,
        "12": (await store.open_private(users[1], users[2], NOW)).id,
    }
    chats["group"] = (await store.create_group(users[0], "g", users[1:3], NOW, 10))[0].id
    await store.send_message(users[0], chats["01"], 9_000, "hello", NOW)
    await store.send_message(users[1], chats["01"], 9_001, "hi", NOW)
    await store.block(users[2], users[1], NOW)
    return users, chats


_send = st.tuples(
    st.just("send"), st.integers(0, USERS - 1), st.sampled_from(CHATS),
    st.integers(1, 6),  # random_ids collide: replays, and reuse for another chat
    st.sampled_from(["text", "text", "text", "reply", "ciphertext"]))
_read = st.tuples(st.just("read"), st.integers(0, USERS - 1), st.sampled_from(CHATS))
_calls = st.lists(st.one_of(_send, _send, _send, _read), min_size=2, max_size=40)


async def _run(store: Store, users: list[int], chats: dict[str, int],
               calls: list[tuple[Any, ...]]) -> list[Any]:
    """Every call queued before the writer runs (one batch), each answer normalised."""

    async def one(n: int, call: tuple[Any, ...]) -> Any:
        user, chat = users[call[1]], chats[call[2]]
        try:
            if call[0] == "read":
                *answer, pushes = await store.read_history(user, chat, 1_000)
            else:
                body = call[4]
                *answer, pushes = await store.send_message(
                    user, chat, 100 * call[1] + call[3],
                    "" if body == "ciphertext" else f"m{n}", NOW + n,
                    reply_to=1 if body == "reply" else None,
                    ciphertext=b"\x00sealed" if body == "ciphertext" else None)
            return *answer, [(p.update, sorted(p.targets)) for p in pushes]
        except PigeonError as exc:
            return type(exc).__name__, exc.code

    return list(await asyncio.gather(*(one(n, call) for n, call in enumerate(calls))))


async def _logs(store: Store, users: list[int]) -> list[Any]:
    """Each user's update log and dialogs (read marks both ways, last messages)."""
    return [(await store.get_difference(user, 0, 1_000), await store.list_dialogs(user))
            for user in users]


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=_calls)
async def test_sends_together_decide_what_sends_alone_decide(
        tmp_path_factory: Any, calls: list[tuple[Any, ...]]) -> None:
    async with _stores(tmp_path_factory.mktemp("bulk")) as (lite, postgres):
        users, chats = await _prepare(lite)
        assert (users, chats) == await _prepare(postgres)
        together_before = postgres.postgres.stats.together
        alone = await _run(lite, users, chats, calls)
        assert await _run(postgres, users, chats, calls) == alone
        assert await _logs(postgres, users) == await _logs(lite, users)
        if sum(1 for call in calls[:2] if call[0] == "send") == 2:
            assert postgres.postgres.stats.together > together_before  # it ran together


async def test_a_long_conversation_done_together_keeps_every_users_log_gap_free(
        tmp_path: Path) -> None:
    """Both sides writing at once, each answering the other (every send then tells the
    other it was read): 400 sends in a few batches; pts and message ids stay gap-free."""
    async with _stores(tmp_path) as (lite, postgres):
        for store in (lite, postgres):
            users, chats = await _prepare(store)
            sends = [store.send_message(users[i % 2], chats["01"], 10_000 + i, f"m{i}", NOW)
                     for i in range(400)]
            answers = await asyncio.gather(*sends)
            assert sorted(m.id for m, _, _ in answers) == list(range(3, 403))
            for user in users[:2]:
                log = (await store.get_difference(user, 0, 2_000)).updates
                assert [u.pts for u in log] == list(range(1, len(log) + 1))
        assert await _logs(postgres, users) == await _logs(lite, users)
        assert postgres.postgres.stats.together >= 300


async def _waiting_for_locks(admin: Any, count: int) -> None:
    """Until ``count`` backends of this database wait for a lock (no sleep to guess it)."""
    for _ in range(2_000):
        waiting = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'")
        if waiting >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never saw {count} backends waiting for a lock")


async def test_a_run_that_waited_for_its_chat_reads_what_the_holder_committed(
        pg_url: str) -> None:
    """The peer's message commits while a run of sends waits for the chat's lock (another
    writer: a process of its own, or another writer of this one): the run reads after it got
    the lock, so its first send tells the peer it read that message, as a send alone does."""
    import asyncpg

    mine, theirs = (PostgresStore(pg_url, readers=1, writers=1) for _ in range(2))
    await mine.open()
    await theirs.open()
    admin = await asyncpg.connect(pg_url)
    try:
        me = (await mine.create_user("+15550780001", "me", NOW)).id
        peer = (await mine.create_user("+15550780002", "peer", NOW)).id
        chat = (await mine.open_private(me, peer, NOW)).id
        await mine.send_message(me, chat, 1, "hello", NOW)
        await mine.send_message(peer, chat, 2, "hi", NOW)
        await mine.read_history(me, chat, 100)
        holder = admin.transaction()
        await holder.start()
        await admin.execute("SELECT 1 FROM chats WHERE id = $1 FOR UPDATE", chat)
        # on another connection, so that the holder's own (admin) is free to watch
        watcher = await asyncpg.connect(pg_url)
        try:
            peer_sends = asyncio.ensure_future(theirs.send_message(peer, chat, 10, "p", NOW))
            await _waiting_for_locks(watcher, 1)
            run = asyncio.ensure_future(asyncio.gather(
                mine.send_message(me, chat, 20, "m1", NOW), mine.send_message(me, chat, 21,
                                                                              "m2", NOW)))
            await _waiting_for_locks(watcher, 2)
            await holder.commit()
            (their_message, _, _), answers = await peer_sends, await run
        finally:
            await watcher.close()
        assert their_message.id == 3 and [m.id for m, _, _ in answers] == [4, 5]
        assert mine.postgres.stats.together == 2
        told = [u.max_id for u in (await mine.get_difference(peer, 0, 100)).updates
                if isinstance(u, up.ReadOutbox)]
        assert told == [2, 3]  # once for "hi", once for what the peer wrote meanwhile
    finally:
        await admin.close()
        await mine.close()
        await theirs.close()
