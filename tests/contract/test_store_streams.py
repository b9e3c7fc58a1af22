"""Contract: streams other than a user's own (a large chat's, a device's inbox): positions
allocated gap-free under concurrent writers, paging, acknowledging, retention, and who may
read a large chat's stream from where."""

from __future__ import annotations

import asyncio
import random

from contract_support import MAX_MEMBERS, T0, full_difference, make_users, raises

from pigeon.domain import streams
from pigeon.protocol import updates as up
from pigeon.protocol.errors import InvalidArgument, NotFound
from pigeon.store import ChatPush, Store, StreamPage


async def all_items(store: Store, stream: str, after: int = 0, limit: int = 7,
                    max_bytes: int = 10_000) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    while True:
        page = await store.stream_items(stream, after, limit, max_bytes)
        out += [(seq, bytes(body)) for seq, body in page.items]
        if not page.more:
            return out
        assert page.items and page.seq == page.items[-1][0]
        after = page.seq


async def chat_items(store: Store, user_id: int, chat_id: int, after: int = 0,
                     limit: int = 1000) -> tuple[list[tuple[int, up.AnyUpdate]], int]:
    out: list[tuple[int, up.AnyUpdate]] = []
    while True:
        page: StreamPage = await store.chat_stream(user_id, chat_id, after, limit)
        out += page.items
        after = page.seq
        if not page.more:
            return out, after


# -- allocation ---------------------------------------------------------------------------------
async def test_concurrent_writers_get_gap_free_increasing_positions(store: Store) -> None:
    rng = random.Random(8)
    names = ["chat:1", "chat:2"]
    plans = [(rng.choice(names), [f"w{w}-{i}".encode() for i in range(rng.randint(1, 5))])
             for w in range(60)]
    ranges = await asyncio.gather(*(store.append_stream(name, bodies, T0)
                                    for name, bodies in plans))
    for name in names:
        mine = [(r, bodies) for (n, bodies), r in zip(plans, ranges, strict=True) if n == name]
        seqs = sorted(seq for r, _ in mine for seq in r)
        assert seqs == list(range(1, len(seqs) + 1))  # no gap, no position given twice
        expected = sorted((seq, body) for r, bodies in mine
                          for seq, body in zip(r, bodies, strict=True))
        assert await all_items(store, name) == expected  # each writer's items, in its order
        for r, _ in mine:
            assert list(r) == list(range(r[0], r[0] + len(r)))  # one writer's run is contiguous


async def test_paging_by_count_and_bytes(store: Store) -> None:
    await store.append_stream("device:9", [bytes([i]) * 3000 for i in range(1, 11)], T0)
    page = await store.stream_items("device:9", 0, 4)
    assert [seq for seq, _ in page.items] == [1, 2, 3, 4] and page.more and page.seq == 4
    small = await store.stream_items("device:9", 4, 100, max_bytes=7000)
    assert [seq for seq, _ in small.items] == [5, 6] and small.more and small.seq == 6
    last = await store.stream_items("device:9", 6, 100)
    assert [seq for seq, _ in last.items] == [7, 8, 9, 10] and not last.more and last.seq == 10
    assert await store.stream_items("device:9", 10, 100) == StreamPage([], 10, False)
    assert await store.stream_items("device:404", 0, 100) == StreamPage([], 0, False)


async def test_bounds_of_an_append(store: Store) -> None:
    with raises(InvalidArgument, "INVALID_ARGUMENT"):
        await store.append_stream("device:1", [b"x" * (streams.MAX_DEVICE_ITEM_BYTES + 1)], T0)
    with raises(InvalidArgument, "INVALID_ARGUMENT"):
        await store.append_stream("device:1", [b""], T0)
    with raises(InvalidArgument, "INVALID_ARGUMENT"):
        await store.append_stream("device:1", [b"x"] * (streams.MAX_ITEMS_PER_APPEND + 1), T0)
    with raises(InvalidArgument, "INVALID_ARGUMENT"):
        await store.append_to_devices(list(range(streams.MAX_DEVICES_PER_APPEND + 1)), b"x", T0)
    assert await store.stream_items("device:1", 0, 10) == StreamPage([], 0, False)


# -- device inboxes -----------------------------------------------------------------------------
async def sessions_of(store: Store, user_id: int, count: int) -> list[int]:
    return [(await store.create_session(user_id, bytes([user_id, i]) * 16, f"d{i}", "1.2.3.4",
                                        T0)).id for i in range(count)]


async def test_one_envelope_to_many_inboxes_in_one_append(store: Store) -> None:
    alice, bob = await make_users(store, 2)
    a1, a2 = await sessions_of(store, alice, 2)
    (b1,) = await sessions_of(store, bob, 1)
    await store.delete_sessions(alice, only=a2)
    first = await store.append_to_devices([a1, a2, b1, 999_999], b"env-1", T0)
    assert first == {a1: 1, b1: 1}  # ended and unknown sessions get nothing
    assert await store.append_to_devices([b1], b"env-2", T0) == {b1: 2}
    assert await all_items(store, streams.device_stream(b1)) == [(1, b"env-1"), (2, b"env-2")]
    assert await all_items(store, streams.device_stream(a2)) == []


async def test_ack_deletes_up_to_the_position_and_positions_are_never_reused(store: Store) -> None:
    (alice,) = await make_users(store, 1)
    (a1,) = await sessions_of(store, alice, 1)
    inbox = streams.device_stream(a1)
    for i in range(5):
        await store.append_to_devices([a1], f"e{i}".encode(), T0)
    assert await store.ack_stream(inbox, 3) == 3
    assert await store.ack_stream(inbox, 3) == 0
    assert [seq for seq, _ in await all_items(store, inbox)] == [4, 5]
    assert await store.append_to_devices([a1], b"e5", T0) == {a1: 6}
    page = await store.stream_items(inbox, 0, 10)
    assert [seq for seq, _ in page.items] == [4, 5, 6] and page.seq == 6


async def test_terminating_a_session_deletes_its_inbox(store: Store) -> None:
    (alice,) = await make_users(store, 1)
    a1, a2 = await sessions_of(store, alice, 2)
    await store.append_to_devices([a1, a2], b"secret envelope", T0)
    await store.delete_sessions(alice, keep=a2)
    assert await all_items(store, streams.device_stream(a1)) == []
    assert len(await all_items(store, streams.device_stream(a2))) == 1


async def test_retention_purges_only_old_device_items_in_bounded_steps(store: Store) -> None:
    (alice,) = await make_users(store, 1)
    (a1,) = await sessions_of(store, alice, 1)
    for i in range(5):
        await store.append_to_devices([a1], b"old", T0 + i)
    await store.append_to_devices([a1], b"new", T0 + 100)
    await store.append_stream("chat:77", [b"not a device"], T0)  # other streams are kept
    assert await store.purge_device_inboxes(T0 + 50, limit=3) == 3
    assert await store.purge_device_inboxes(T0 + 50, limit=3) == 2
    assert await store.purge_device_inboxes(T0 + 50, limit=3) == 0
    assert await all_items(store, streams.device_stream(a1)) == [(6, b"new")]
    assert len(await all_items(store, "chat:77")) == 1


# -- a large chat's stream ----------------------------------------------------------------------
async def test_a_large_chat_message_is_one_item_for_every_member(store: Store) -> None:
    owner, bob, carol = await make_users(store, 3)
    chat, pushes = await store.create_group(owner, "big", [bob, carol], T0, MAX_MEMBERS,
                                            large=True)
    assert chat.kind == "supergroup"
    assert any(isinstance(p, ChatPush) for p in pushes)
    before = {u: len(await full_difference(store, u)) for u in (owner, bob, carol)}
    message, pts, sent = await store.send_message(bob, chat.id, 1, "hello all", T0 + 1)
    (push,) = sent
    assert isinstance(push, ChatPush) and push.targets == [] and push.stream == f"chat:{chat.id}"
    assert pts == 0  # the sender's own stream did not move
    for user in (owner, bob, carol):
        assert len(await full_difference(store, user)) == before[user]  # no per-member row
        items, reached = await chat_items(store, user, chat.id)
        assert items[-1] == (push.update.pts, up.NewMessage(pts=push.update.pts,
                                                            message=message))
        assert reached == push.update.pts
    state = await store.get_state(carol)
    assert state.streams == {f"chat:{chat.id}": push.update.pts}


async def test_only_members_read_a_chat_stream_and_from_their_joining(store: Store) -> None:
    owner, bob, dave, eve = await make_users(store, 4)
    chat, _ = await store.create_group(owner, "big", [bob], T0, MAX_MEMBERS, large=True)
    first, _, _ = await store.send_message(owner, chat.id, 1, "before dave", T0)
    with raises(NotFound, "STREAM_NOT_FOUND"):
        await store.chat_stream(dave, chat.id, 0, 100)
    await store.add_members(owner, chat.id, [dave], T0, MAX_MEMBERS)
    await store.edit_message(owner, chat.id, first.id, "edited after dave joined", T0)
    later, _, _ = await store.send_message(owner, chat.id, 2, "after dave", T0)
    items, _ = await chat_items(store, dave, chat.id)
    bodies = [body for _, body in items]
    assert not any(isinstance(b, up.NewMessage) and b.message.id == first.id for b in bodies)
    assert not any("edited" in getattr(getattr(b, "message", None), "text", "") for b in bodies)
    assert isinstance(bodies[-1], up.NewMessage) and bodies[-1].message == later
    seqs = [seq for seq, _ in items]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # gap-free from joining on
    bob_items, _ = await chat_items(store, bob, chat.id)
    assert any(isinstance(b, up.EditMessage) for _, b in bob_items)  # bob saw the edit
    await store.remove_member(bob, chat.id, bob, T0)
    await store.send_message(owner, chat.id, 3, "after bob left", T0)
    with raises(NotFound, "STREAM_NOT_FOUND"):
        await store.chat_stream(bob, chat.id, 0, 100)
    with raises(NotFound, "STREAM_NOT_FOUND"):
        await store.chat_stream(eve, chat.id, 0, 100)
    assert f"chat:{chat.id}" not in (await store.get_state(bob)).streams


async def test_a_regular_group_keeps_its_per_member_updates(store: Store) -> None:
    owner, bob = await make_users(store, 2)
    chat, _ = await store.create_group(owner, "small", [bob], T0, MAX_MEMBERS)
    assert chat.kind == "group"
    _, pts, pushes = await store.send_message(owner, chat.id, 1, "hi", T0)
    assert pts > 0 and not any(isinstance(p, ChatPush) for p in pushes)
    with raises(NotFound, "STREAM_NOT_FOUND"):
        await store.chat_stream(bob, chat.id, 0, 100)
    assert (await store.get_state(bob)).streams == {}


async def test_reading_and_the_chats_list_work_in_a_large_chat(store: Store) -> None:
    owner, bob = await make_users(store, 2)
    chat, _ = await store.create_group(owner, "big", [bob], T0, MAX_MEMBERS, large=True)
    for i in range(3):
        await store.send_message(owner, chat.id, 10 + i, f"m{i}", T0 + i)
    (dialog,) = await store.list_dialogs(bob)
    assert dialog.chat.kind == "supergroup" and dialog.unread_count == 3
    assert dialog.last_message is not None and dialog.last_message.text == "m2"
    _, unread, pushes = await store.read_history(bob, chat.id, 2)
    assert unread == 1
    # bob's other devices learn it on his own stream; the authors are not told (no fan-out)
    assert all(not isinstance(p, ChatPush) for p in pushes)
    assert {uid for p in pushes for uid, _ in p.targets} == {bob}
    (dialog,) = await store.list_dialogs(bob)
    assert dialog.unread_count == 1


async def test_membership_changes_are_one_item_plus_the_people_concerned(store: Store) -> None:
    owner, bob, carol = await make_users(store, 3)
    chat, _ = await store.create_group(owner, "big", [bob], T0, MAX_MEMBERS, large=True)
    _, pushes = await store.add_members(owner, chat.id, [carol], T0, MAX_MEMBERS)
    shared = [p for p in pushes if isinstance(p, ChatPush)]
    assert len(shared) == 1 and shared[0].update.chat.role is None
    assert shared[0].update.chat.member_count == 3
    told = {uid: p.update.chat.role for p in pushes for uid, _ in p.targets}
    assert told == {carol: "member"}  # only the newcomer, on her own stream
    _, pushes = await store.remove_member(owner, chat.id, owner, T0)  # the owner leaves
    told = {uid: p.update.chat.role for p in pushes for uid, _ in p.targets}
    assert told == {owner: None, bob: "owner"}  # the heir is the longest-standing member


async def test_an_inbox_read_after_its_items_were_acknowledged_ends_at_its_head(
        store: Store) -> None:
    """Issue 9: a device reading its inbox again from 0 after acknowledging everything got
    an empty page with ``more`` forever."""
    await store.append_stream("device:4", [b"a", b"b", b"c"], T0)
    assert await store.ack_stream("device:4", 3) == 3
    page = await store.stream_items("device:4", 0, 10)
    assert (page.items, page.seq, page.more) == ([], 3, False)
    await store.append_stream("device:4", [b"d"], T0)
    page = await store.stream_items("device:4", 0, 10)
    assert ([seq for seq, _ in page.items], page.seq, page.more) == ([4], 4, False)
