"""Contract: the per-user update sequence (pts) and get_difference.

A client that was offline asks ``get_difference(pts)`` and must receive exactly what it
missed: every update after ``pts``, in order, nothing twice, no holes. The pushes a write
returns are the same updates, with the same numbers, delivered live.
"""

from __future__ import annotations

import asyncio
from typing import Any

from contract_support import MAX_MEMBERS, T0, full_difference, key, make_users, pushed_to

from pigeon.protocol import updates as up
from pigeon.store import Push, Store


async def every_kind_of_update(store: Store) -> tuple[list[int], list[Push]]:
    """One of each write that produces updates, among four users; returns all pushes."""
    a, b, c, d = await make_users(store, 4)
    pushes: list[Push] = []
    group, p = await store.create_group(a, "G", [b, c], T0, MAX_MEMBERS)
    pushes += p
    private = await store.open_private(a, d, T0)
    for i, (sender, chat_id) in enumerate([(a, group.id), (b, group.id), (c, group.id),
                                           (a, private.id), (d, private.id)]):
        _, _, p = await store.send_message(sender, chat_id, 1000 + i, f"m{i}", T0 + i)
        pushes += p
    _, p = await store.edit_message(b, group.id, 2, "m1 edited", T0 + 10)
    pushes += p
    _, _, p = await store.delete_messages(c, group.id, [1], for_everyone=False)
    pushes += p
    _, _, p = await store.delete_messages(c, group.id, [3], for_everyone=True)
    pushes += p
    _, _, p = await store.read_history(b, group.id, 3)
    pushes += p
    _, _, p = await store.read_history(d, private.id, 2)
    pushes += p
    _, p = await store.set_title(a, group.id, "G2", T0)
    pushes += p
    _, p = await store.add_members(a, group.id, [d], T0, MAX_MEMBERS)
    pushes += p
    _, p = await store.set_role(a, group.id, b, "admin", T0)
    pushes += p
    _, p = await store.remove_member(b, group.id, c, T0)
    pushes += p
    _, p = await store.remove_member(a, group.id, a, T0)  # the owner leaves
    pushes += p
    _, _, p = await store.send_message(d, group.id, 2000, "after", T0 + 20)
    pushes += p
    return [a, b, c, d], pushes


async def test_pts_counts_up_by_one_across_every_kind_of_update(store: Store) -> None:
    users, pushes = await every_kind_of_update(store)
    kinds = {type(push.update) for push in pushes}
    assert kinds == {up.ChatUpdate, up.NewMessage, up.EditMessage, up.DeleteMessages,
                     up.ReadInbox, up.ReadOutbox}
    for uid in users:
        mine = [u.pts for u in pushed_to(pushes, uid)]
        assert mine == list(range(1, len(mine) + 1)), f"user {uid}: {mine}"
        assert (await store.get_state(uid)).pts == len(mine)


async def test_pushes_and_difference_agree(store: Store) -> None:
    users, pushes = await every_kind_of_update(store)
    for uid in users:
        diff = await full_difference(store, uid)
        assert [u.pts for u in diff] == list(range(1, len(diff) + 1))
        assert [key(u) for u in diff] == [key(u) for u in pushed_to(pushes, uid)]


async def test_difference_from_any_point_is_exactly_the_rest(store: Store) -> None:
    users, _ = await every_kind_of_update(store)
    for uid in users:
        everything = await full_difference(store, uid)
        top = (await store.get_state(uid)).pts
        for pts in range(top + 1):
            diff = await store.get_difference(uid, pts, 1000)
            assert diff.updates == everything[pts:]
            assert (diff.more, diff.state.pts) == (False, top)


async def test_difference_pages_with_more(store: Store) -> None:
    users, _ = await every_kind_of_update(store)
    a = users[0]
    everything = await full_difference(store, a)
    top = (await store.get_state(a)).pts
    assert top >= 7
    pages: list[list[Any]] = []
    pts = 0
    while True:
        diff = await store.get_difference(a, pts, 3)
        assert len(diff.updates) <= 3
        pages.append(diff.updates)
        if not diff.more:
            assert diff.state.pts == top
            break
        # A page that is not the last is full, and its state is where it stopped.
        assert len(diff.updates) == 3
        assert diff.state.pts == diff.updates[-1].pts
        pts = diff.state.pts
    assert [u for page in pages for u in page] == everything
    assert len(pages) == -(-top // 3)


async def test_difference_when_up_to_date(store: Store) -> None:
    a, b = await make_users(store, 2)
    empty = await store.get_difference(a, 0, 10)
    assert (empty.updates, empty.more, empty.state.pts) == ([], False, 0)
    chat = await store.open_private(a, b, T0)
    await store.send_message(a, chat.id, 1, "x", T0)
    top = (await store.get_state(a)).pts
    diff = await store.get_difference(a, top, 10)
    assert (diff.updates, diff.more, diff.state.pts) == ([], False, top)


async def test_exact_page_boundary_has_no_more(store: Store) -> None:
    a, b = await make_users(store, 2)
    chat = await store.open_private(a, b, T0)
    for i in range(4):
        await store.send_message(a, chat.id, i, "x", T0)
    diff = await store.get_difference(a, 0, 4)
    assert (len(diff.updates), diff.more, diff.state.pts) == (4, False, 4)
    diff = await store.get_difference(a, 0, 2)
    assert (len(diff.updates), diff.more, diff.state.pts) == (2, True, 2)


async def test_users_sequences_are_independent(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    chat = await store.open_private(a, b, T0)
    for i in range(3):
        await store.send_message(a, chat.id, i, "x", T0)
    assert (await store.get_state(c)).pts == 0
    assert await full_difference(store, c) == []


async def test_concurrent_writes_stay_gap_free(store: Store) -> None:
    """Many writers at once (the SQLite backend batches them into one commit): ids and pts
    still come out dense and the pushes still match the difference."""
    a, b, c = await make_users(store, 3)
    group, created = await store.create_group(a, "G", [b, c], T0, MAX_MEMBERS)
    senders = [a, b, c] * 20
    results = await asyncio.gather(*(
        store.send_message(s, group.id, i, f"m{i}", T0 + i) for i, s in enumerate(senders)
    ))
    assert sorted(m.id for m, _, _ in results) == list(range(1, len(senders) + 1))
    pushes = created + [p for _, _, ps in results for p in ps]
    for uid in (a, b, c):
        expected = pushed_to(pushes, uid)
        assert [u.pts for u in expected] == list(range(1, len(expected) + 1))
        assert sum(isinstance(u, up.NewMessage) for u in expected) == len(senders)
        assert [key(u) for u in await full_difference(store, uid)] == [key(u) for u in expected]
    # The sender's pts returned with each message is the pts of its own NewMessage.
    for message, pts, ps in results:
        assert (message.sender_id, pts) in ps[0].targets


async def test_difference_read_during_writes_never_runs_ahead_of_its_state(store: Store) -> None:
    """A difference is one consistent snapshot: its ``state`` is never behind the updates
    it carries (else the client would ask for, and apply, the same updates twice)."""
    a, b = await make_users(store, 2)
    chat = await store.open_private(a, b, T0)
    stop = asyncio.Event()

    async def writer() -> None:
        for i in range(150):
            await store.send_message(a, chat.id, i, "x", T0)
        stop.set()

    async def reader() -> None:
        while not stop.is_set():
            diff = await store.get_difference(b, 0, 10_000)
            if diff.updates:
                assert diff.updates[-1].pts <= diff.state.pts
                assert [u.pts for u in diff.updates] == list(range(1, len(diff.updates) + 1))
            if not diff.more:
                assert not diff.updates or diff.state.pts == diff.updates[-1].pts

    await asyncio.gather(writer(), *(reader() for _ in range(3)))
