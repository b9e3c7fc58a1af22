"""Contract: groups spanning regions (store/sqlite_region_groups.py). In the group's region
every change of a group with members homed elsewhere is queued, in its own transaction, for
each region with members (a region that gets its first member gets every member); a replica
applies what comes, once and in order, keeping the group's ids, and tells only the people
homed here."""

from __future__ import annotations

import msgspec
import pytest
from contract_support import MAX_MEMBERS, T0, make_users, raises

from pigeon.protocol import updates as up
from pigeon.protocol.errors import Forbidden, InvalidArgument, NotFound
from pigeon.protocol.regions import (
    CrossGroup,
    CrossGroupDelete,
    CrossGroupEdit,
    CrossGroupMessage,
    CrossGroupRead,
    GroupMember,
    MessageRef,
    RemoteUser,
    cross_of,
)
from pigeon.store import Store

BOB = RemoteUser(id=(1 << 40) + 7, name="Bob", username="bob")
DAN = RemoteUser(id=(1 << 40) + 8, name="Dan")


@pytest.fixture(autouse=True)
def _crossing(store: Store) -> None:
    store.crosses_regions = True  # as server/backends.make_store sets it with a region table


def shipped(rows: list) -> list:  # type: ignore[type-arg]
    return [cross_of(q.kind, {"origin": "a", **q.fields()}) for q in rows]


async def test_a_group_with_members_homed_elsewhere_is_shipped_there(store: Store) -> None:
    alice, carol = await make_users(store, 2)
    for person in (BOB, DAN):
        await store.remember_remote(person, "b", T0)
    chat, pushes = await store.create_group(alice, "club", [carol, BOB.id], T0, MAX_MEMBERS)
    # Updates are written only for the people homed here (Bob's region tells Bob).
    assert {uid for p in pushes for uid, _ in p.targets} == {alice, carol}
    (state,) = shipped(await store.outbox("b", 10))
    assert isinstance(state, CrossGroup) and state.recipient_id == chat.id and state.reset
    assert {m.user.id: (m.role, m.home) for m in state.joined} == {
        alice: ("owner", None), carol: ("member", None), BOB.id: ("member", "b")}
    assert (state.title, state.member_count, state.kind) == ("club", 3, "group")
    await store.outbox_done([q.id for q in await store.outbox("b", 10)])

    message, _, _ = await store.send_message(alice, chat.id, 41, "hello", T0 + 1)
    await store.send_message(alice, chat.id, 41, "hello", T0 + 1)  # a resend: once
    await store.edit_message(alice, chat.id, message.id, "hello!", T0 + 2)
    await store.add_members(alice, chat.id, [DAN.id], T0 + 3, MAX_MEMBERS)
    await store.delete_messages(alice, chat.id, [message.id], True)
    await store.remove_member(alice, chat.id, BOB.id, T0 + 4)
    sent, edit, added, deleted, removed = shipped(await store.outbox("b", 10))
    assert isinstance(sent, CrossGroupMessage)
    assert (sent.message_id, sent.random_id, sent.text) == (message.id, 41, "hello")
    assert isinstance(edit, CrossGroupEdit) and (edit.random_id, edit.text) == (41, "hello!")
    assert isinstance(added, CrossGroup) and [m.user.id for m in added.joined] == [DAN.id]
    assert not added.reset
    assert isinstance(deleted, CrossGroupDelete)
    assert deleted.messages == [MessageRef(alice, 41)]
    assert isinstance(removed, CrossGroup) and removed.left == [BOB.id]
    await store.outbox_done([q.id for q in await store.outbox("b", 10)])
    # Dan leaves too: region b is told, then has nobody left to tell.
    await store.remove_member(DAN.id, chat.id, DAN.id, T0 + 5)
    (last,) = shipped(await store.outbox("b", 10))
    assert isinstance(last, CrossGroup) and last.left == [DAN.id]
    await store.outbox_done([q.id for q in await store.outbox("b", 10)])
    await store.send_message(alice, chat.id, 42, "only us", T0 + 6)
    assert await store.outbox_depth() == {}


async def test_a_local_group_queues_nothing(store: Store) -> None:
    alice, carol = await make_users(store, 2)
    chat, _ = await store.create_group(alice, "here", [carol], T0, MAX_MEMBERS)
    await store.send_message(carol, chat.id, 1, "hi", T0)
    await store.set_title(alice, chat.id, "still here", T0)
    assert await store.outbox_depth() == {}


async def test_an_encrypted_group_spans_regions_with_its_ciphertext(store: Store) -> None:
    alice, carol = await make_users(store, 2)
    await store.remember_remote(BOB, "b", T0)
    chat, _ = await store.create_group(alice, "secret", [carol], T0, MAX_MEMBERS, secret=True)
    await store.add_members(alice, chat.id, [BOB.id], T0, MAX_MEMBERS)
    (state,) = shipped(await store.outbox("b", 10))
    assert isinstance(state, CrossGroup) and state.secret and state.reset
    await store.outbox_done([q.id for q in await store.outbox("b", 10)])
    sealed = b"\x01megolm bytes"
    message, _, _ = await store.send_message(alice, chat.id, 5, "", T0 + 1, ciphertext=sealed)
    (sent,) = shipped(await store.outbox("b", 10))
    assert isinstance(sent, CrossGroupMessage)
    assert (sent.message_id, sent.text, sent.ciphertext) == (message.id, "", sealed)
    # a plain group's message carries none
    plain, _ = await store.create_group(alice, "plain", [BOB.id], T0, MAX_MEMBERS)
    await store.outbox_done([q.id for q in await store.outbox("b", 10)])
    await store.send_message(alice, plain.id, 6, "text", T0 + 2)
    (text,) = shipped(await store.outbox("b", 10))
    assert isinstance(text, CrossGroupMessage) and text.ciphertext is None


async def test_a_replica_applies_its_group_once_in_order_and_tells_only_its_people(
        store: Store) -> None:
    # This store plays region a; the group lives in region b, with b's ids.
    (carol,) = await make_users(store, 1)
    (carol_row,) = await store.get_users([carol])
    group = (1 << 40) + 500

    def member(user: RemoteUser, role: str = "member", since: int = 0,
               home: str | None = None) -> GroupMember:
        return GroupMember(user=user, home=home, role=role, joined=T0,  # type: ignore[arg-type]
                           history_from=since)

    def state(joined: list[GroupMember], left: list[int], count: int, last: int = 0) -> CrossGroup:
        return CrossGroup(origin="b", sender=BOB, recipient_id=group, date=T0, kind="group",
                          title="club", created=T0, member_count=count, last_message_id=last,
                          joined=joined, left=left)

    def said(n: int, text: str, by: RemoteUser = BOB) -> CrossGroupMessage:
        return CrossGroupMessage(origin="b", sender=by, recipient_id=group, random_id=n,
                                 text=text, date=T0 + n, message_id=n)

    me = RemoteUser(id=carol, name=carol_row.name)
    verdict, pushes = await store.apply_cross(
        state([member(BOB, "owner"), member(me, home="a")], [], 2), 1, T0, None)
    assert verdict == "apply"
    assert {uid for p in pushes for uid, _ in p.targets} == {carol}
    assert (await store.get_chat(carol, group)).member_count == 2
    _, pushes = await store.apply_cross(said(1, "one"), 2, T0, None)
    assert [uid for uid, _ in pushes[0].targets] == [carol]
    assert await store.apply_cross(said(1, "one"), 2, T0, None) == ("old", [])
    # Carol's own message, sent through b, comes back with b's id and Carol's pts here.
    (_, pushes) = await store.apply_cross(said(2, "mine", me), 3, T0, None)
    assert isinstance(pushes[0].update, up.NewMessage) and pushes[0].targets[0][0] == carol
    await store.apply_cross(CrossGroupEdit(origin="b", sender=BOB, recipient_id=group,
                                           random_id=1, text="one!", date=T0 + 9), 4, T0, None)
    history = await store.history(carol, group, None, 10)
    assert [(m.id, m.text, m.sender_id) for m in history] == [(2, "mine", carol),
                                                              (1, "one!", BOB.id)]
    await store.apply_cross(CrossGroupDelete(origin="b", sender=BOB, recipient_id=group,
                                             messages=[MessageRef(carol, 2)], date=T0), 5, T0,
                            None)
    assert [m.id for m in await store.history(carol, group, None, 10)] == [1]
    # Carol is removed: told so, and nothing after it reaches her.
    _, pushes = await store.apply_cross(state([], [carol], 1), 6, T0, None)
    assert {uid for p in pushes for uid, _ in p.targets} == {carol}
    _, pushes = await store.apply_cross(said(3, "after"), 7, T0, None)
    assert all(uid != carol for p in pushes for uid, _ in p.targets)
    state_now = await store.get_state(carol)
    diff = await store.get_difference(carol, 0, 100)
    assert diff.state.pts == state_now.pts
    assert "after" not in [u.message.text for u in diff.updates if isinstance(u, up.NewMessage)]


async def test_a_replica_refuses_an_id_taken_here(store: Store) -> None:
    alice, carol = await make_users(store, 2)
    local, _ = await store.create_group(alice, "mine", [carol], T0, MAX_MEMBERS)
    hijack = CrossGroup(origin="b", sender=BOB, recipient_id=local.id, date=T0, kind="group",
                        title="theirs", created=T0, member_count=1, last_message_id=0)
    with raises(InvalidArgument, "NOT_SUPPORTED_ACROSS_REGIONS"):
        await store.apply_cross(hijack, 1, T0, None)
    assert (await store.get_chat(alice, local.id)).title == "mine"
    assert msgspec.json.encode(hijack)  # a valid struct: refused for what it claims, not its form


async def test_an_add_across_regions_follows_the_privacy_chosen_at_home(store: Store) -> None:
    from pigeon.store import GroupPolicy

    (alice,) = await make_users(store, 1)
    policy = GroupPolicy(default_who_can_add="contacts")
    everyone = RemoteUser(id=(1 << 40) + 20, name="Eve", who_can_add="everyone")
    asks = RemoteUser(id=(1 << 40) + 21, name="Ian", who_can_add="contacts")
    for person in (everyone, asks):
        await store.remember_remote(person, "b", T0)
        await store.remember_discovery(alice, person.id)  # Alice looked them up
    chat, _ = await store.create_group(alice, "club", [everyone.id], T0, MAX_MEMBERS, policy)
    assert chat.member_count == 2
    # Ian would be invited; an invitation would never reach his region: refused, typed.
    with raises(InvalidArgument, "NOT_SUPPORTED_ACROSS_REGIONS"):
        await store.add_members(alice, chat.id, [asks.id], T0, MAX_MEMBERS, policy)
    # A message from him (no setting said) keeps what his region said before.
    await store.remember_remote(RemoteUser(id=asks.id, name="Ian"), "b", T0)
    with raises(InvalidArgument, "NOT_SUPPORTED_ACROSS_REGIONS"):
        await store.add_members(alice, chat.id, [asks.id], T0, MAX_MEMBERS, policy)
    await store.remember_remote(RemoteUser(id=asks.id, name="Ian", who_can_add="everyone"),
                                "b", T0)
    assert (await store.add_members(alice, chat.id, [asks.id], T0, MAX_MEMBERS,
                                    policy))[0].member_count == 3


async def test_a_replica_takes_messages_only_from_its_group_region(store: Store) -> None:
    # Every path of a member homed here is forwarded (server/region_groups.py); one that
    # were not (a sticker, say) must not write a message with an id of its own here.
    (carol,) = await make_users(store, 1)
    (row,) = await store.get_users([carol])
    group = (1 << 40) + 600
    me = RemoteUser(id=carol, name=row.name)
    await store.apply_cross(CrossGroup(
        origin="b", sender=BOB, recipient_id=group, date=T0, kind="group", title="club",
        created=T0, member_count=2, last_message_id=0,
        joined=[GroupMember(user=BOB, role="owner", joined=T0, history_from=0),
                GroupMember(user=me, role="member", joined=T0, history_from=0, home="a")]),
        1, T0, None)
    with raises(InvalidArgument, "NOT_SUPPORTED_ACROSS_REGIONS"):
        await store.send_message(carol, group, 1, "here?", T0)
    assert await store.history(carol, group, None, 10) == []


async def test_a_replica_fed_again_forgets_who_left_meanwhile(store: Store) -> None:
    (carol,) = await make_users(store, 1)
    (row,) = await store.get_users([carol])
    me = RemoteUser(id=carol, name=row.name)
    group = (1 << 40) + 700

    def state(joined: list[RemoteUser], left: list[int], reset: bool) -> CrossGroup:
        return CrossGroup(origin="b", sender=BOB, recipient_id=group, date=T0, kind="group",
                          title="club", created=T0, member_count=len(joined), last_message_id=0,
                          joined=[GroupMember(user=u, role="owner" if u == BOB else "member",
                                              joined=T0, history_from=0,
                                              home="a" if u == me else None) for u in joined],
                          left=left, reset=reset)

    await store.apply_cross(state([BOB, me, DAN], [], True), 1, T0, None)
    await store.apply_cross(state([], [carol], False), 2, T0, None)  # a unfed from here
    # Dan left meanwhile; Carol is added again: a gets every member, the first part a reset.
    await store.apply_cross(state([BOB, me], [], True), 3, T0, None)
    members = await store.list_members(carol, group, 0, 10)
    assert sorted(m.user.id for m in members) == sorted([BOB.id, carol])


async def test_read_marks_reach_the_authors_of_every_region(store: Store) -> None:
    # This store is the group's region (a); Bob's region b and Cy's region c keep replicas.
    alice, carol = await make_users(store, 2)
    cy = RemoteUser(id=(2 << 40) + 1, name="Cy")
    for person, region in ((BOB, "b"), (cy, "c")):
        await store.remember_remote(person, region, T0)
    chat, _ = await store.create_group(alice, "club", [carol, BOB.id, cy.id], T0, MAX_MEMBERS)
    sent, _, _ = await store.send_message(alice, chat.id, 1, "read me", T0)
    for region in ("b", "c"):
        await store.outbox_done([q.id for q in await store.outbox(region, 100)])
    # Bob (b) read it: Alice is told here, and c is told (not b again).
    _, pushes = await store.apply_cross(CrossGroupRead(
        origin="b", sender=BOB, recipient_id=chat.id, message_id=sent.id, date=T0), 1, T0,
        None)
    outbox_marks = [p for p in pushes if isinstance(p.update, up.ReadOutbox)]
    assert [uid for p in outbox_marks for uid, _ in p.targets] == [alice]
    assert await store.outbox("b", 10) == []
    (passed,) = shipped(await store.outbox("c", 10))
    assert isinstance(passed, CrossGroupRead)
    assert (passed.sender.id, passed.message_id) == (BOB.id, sent.id)
    await store.outbox_done([q.id for q in await store.outbox("c", 10)])
    # Carol (here) reads: both regions are told.
    await store.read_history(carol, chat.id, sent.id)
    assert [type(x) for x in shipped(await store.outbox("b", 10))] == [CrossGroupRead]
    assert [type(x) for x in shipped(await store.outbox("c", 10))] == [CrossGroupRead]
    # A read said to come from b for someone not homed there is skipped.
    with raises(NotFound, "MESSAGE_NOT_FOUND"):
        await store.apply_cross(CrossGroupRead(origin="b", sender=cy, recipient_id=chat.id,
                                               message_id=sent.id, date=T0), 2, T0, None)


def _replica_state(group: int, people: list[tuple[RemoteUser, str, str | None]],
                   seq_reset: bool = True, left: list[int] | None = None) -> CrossGroup:
    return CrossGroup(origin="b", sender=BOB, recipient_id=group, date=T0, kind="group",
                      title="club", created=T0, member_count=len(people), last_message_id=0,
                      joined=[GroupMember(user=u, role=role, joined=T0,  # type: ignore[arg-type]
                                          history_from=0, home=home)
                              for u, role, home in people],
                      left=left or [], reset=seq_reset)


async def test_a_replica_is_written_only_from_its_group_region(store: Store) -> None:
    # Carol (homed here) owns b's group: whatever she does to it is done in b and comes
    # back; done here it would never reach b, and could let her add people here who would
    # then read b's group.
    carol, dave = await make_users(store, 2)
    (row,) = await store.get_users([carol])
    me = RemoteUser(id=carol, name=row.name)
    group = (1 << 40) + 800
    await store.apply_cross(_replica_state(group, [(BOB, "member", None), (me, "owner", "a")]),
                            1, T0, None)
    await store.apply_cross(CrossGroupMessage(origin="b", sender=me, recipient_id=group,
                                              random_id=5, text="mine", date=T0,
                                              message_id=1), 2, T0, None)
    for refused in (store.add_members(carol, group, [dave], T0, MAX_MEMBERS),
                    store.remove_member(carol, group, BOB.id, T0),
                    store.set_role(carol, group, BOB.id, "admin", T0),
                    store.set_title(carol, group, "mine now", T0),
                    store.edit_message(carol, group, 1, "changed", T0),
                    store.delete_messages(carol, group, [1], True)):
        with raises(InvalidArgument, "NOT_SUPPORTED_ACROSS_REGIONS"):
            await refused
    chat = await store.get_chat(carol, group)
    assert (chat.title, chat.member_count) == ("club", 2)
    assert [m.text for m in await store.history(carol, group, None, 10)] == ["mine"]
    # What is only Carol's own is done here: a delete for herself, a read mark.
    assert (await store.delete_messages(carol, group, [1], False))[1] == 1
    await store.read_history(carol, group, 1)
    assert await store.outbox_depth() == {}


async def test_a_replica_does_not_take_people_homed_here_as_someone_elses(store: Store) -> None:
    carol, dave = await make_users(store, 2)
    names = {u.id: u.name for u in await store.get_users([carol, dave])}
    me, him = (RemoteUser(id=u, name=names[u]) for u in (carol, dave))
    group = (1 << 40) + 900
    # Dave, homed here, said to be homed in the group's region: the item is refused.
    with raises(InvalidArgument, "INVALID_ARGUMENT"):
        await store.apply_cross(_replica_state(group, [(BOB, "owner", None),
                                                       (me, "member", "a"),
                                                       (him, "member", None)]), 1, T0, None)
    assert (await store.get_users([dave]))[0].name == names[dave]
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.get_chat(dave, group)


async def test_a_reset_replica_keeps_only_the_members_it_names(store: Store) -> None:
    carol, dave = await make_users(store, 2)
    names = {u.id: u.name for u in await store.get_users([carol, dave])}
    me, him = (RemoteUser(id=u, name=names[u]) for u in (carol, dave))
    group = (1 << 40) + 950
    await store.apply_cross(_replica_state(group, [(BOB, "owner", None), (me, "member", "a"),
                                                   (him, "member", "a")]), 1, T0, None)
    # Dave's leaving was skipped here; later a is fed again, from scratch: Dave is not named.
    _, pushes = await store.apply_cross(
        _replica_state(group, [(BOB, "owner", None), (me, "member", "a")]), 2, T0, None)
    assert sorted(m.user.id for m in await store.list_members(carol, group, 0, 10)) == sorted(
        [BOB.id, carol])
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.get_chat(dave, group)
    assert dave in {uid for p in pushes for uid, _ in p.targets}  # told he is out
