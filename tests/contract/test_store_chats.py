"""Contract: private chats and groups (membership, roles, titles)."""

from __future__ import annotations

from contract_support import (
    MAX_MEMBERS,
    T0,
    full_difference,
    make_users,
    pushed_to,
    raises,
    targets_of,
)

from pigeon.protocol import updates as up
from pigeon.protocol.errors import Conflict, Forbidden, NotFound
from pigeon.store import Store


async def roles(store: Store, viewer: int, chat_id: int) -> dict[int, str]:
    return {m.user.id: m.role for m in await store.list_members(viewer, chat_id, 0, 100)}


# -- private chats --------------------------------------------------------------------------
async def test_open_private_is_idempotent_and_symmetric(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    first = await store.open_private(a, b, T0)
    again = await store.open_private(a, b, T0 + 1)
    mirrored = await store.open_private(b, a, T0 + 2)
    other = await store.open_private(a, c, T0)
    assert first.id == again.id == mirrored.id
    assert other.id != first.id
    assert (first.kind, first.peer_id, first.member_count, first.role) == \
        ("private", b, 2, "member")
    assert mirrored.peer_id == a
    assert await store.get_chat(b, first.id) == mirrored


async def test_open_private_with_unknown_user(store: Store) -> None:
    (a,) = await make_users(store, 1)
    with raises(NotFound, "USER_NOT_FOUND"):
        await store.open_private(a, 10**9, T0)


async def test_outsider_cannot_read_a_private_chat(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    chat = await store.open_private(a, b, T0)
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.get_chat(c, chat.id)
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.get_chat(a, 10**9)


async def test_group_operations_are_refused_in_private_chats(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    chat = await store.open_private(a, b, T0)
    with raises(Forbidden, "FORBIDDEN"):
        await store.add_members(a, chat.id, [c], T0, MAX_MEMBERS)
    with raises(Forbidden, "FORBIDDEN"):
        await store.set_title(a, chat.id, "no", T0)
    with raises(Forbidden, "FORBIDDEN"):
        await store.remove_member(a, chat.id, a, T0)


# -- creating groups ------------------------------------------------------------------------
async def test_create_group(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    chat, pushes = await store.create_group(a, "Pigeons", [b, c, b, a], T0, MAX_MEMBERS)
    assert (chat.kind, chat.title, chat.member_count, chat.role, chat.last_message_id) == (
        "group", "Pigeons", 3, "owner", 0)
    assert await roles(store, b, chat.id) == {a: "owner", b: "member", c: "member"}
    # Every member learns of the chat, each with their own role.
    assert targets_of(pushes) == {a, b, c}
    for uid, role in ((a, "owner"), (b, "member"), (c, "member")):
        (update,) = pushed_to(pushes, uid)
        assert isinstance(update, up.ChatUpdate)
        assert (update.chat.id, update.chat.title, update.chat.role) == (chat.id, "Pigeons", role)
        assert update.pts == 1


async def test_create_group_alone(store: Store) -> None:
    (a,) = await make_users(store, 1)
    chat, _ = await store.create_group(a, "Just me", [], T0, MAX_MEMBERS)
    assert chat.member_count == 1
    assert await store.member_ids(a, chat.id, 100) == []


async def test_create_group_over_the_limit(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    with raises(Conflict, "GROUP_FULL"):
        await store.create_group(a, "Too many", [b, c], T0, max_members=2)
    assert await store.list_dialogs(a) == []
    assert (await store.get_state(a)).pts == 0


async def test_create_group_with_unknown_member(store: Store) -> None:
    a, b = await make_users(store, 2)
    with raises(NotFound, "USER_NOT_FOUND"):
        await store.create_group(a, "Ghosts", [b, 10**9], T0, MAX_MEMBERS)
    assert await store.list_dialogs(b) == []


# -- adding members -------------------------------------------------------------------------
async def test_owner_adds_members(store: Store) -> None:
    a, b, c, d = await make_users(store, 4)
    group, _ = await store.create_group(a, "G", [b], T0, MAX_MEMBERS)
    chat, pushes = await store.add_members(a, group.id, [c, d], T0 + 1, MAX_MEMBERS)
    assert chat.member_count == 4
    assert targets_of(pushes) == {a, b, c, d}
    (update,) = pushed_to(pushes, c)
    assert isinstance(update, up.ChatUpdate) and update.chat.role == "member"
    assert sorted(await store.member_ids(a, group.id, 100)) == sorted([b, c, d])


async def test_plain_member_cannot_add(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    group, _ = await store.create_group(a, "G", [b], T0, MAX_MEMBERS)
    with raises(Forbidden, "NOT_ADMIN"):
        await store.add_members(b, group.id, [c], T0, MAX_MEMBERS)
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.get_chat(c, group.id)


async def test_admin_can_add(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    group, _ = await store.create_group(a, "G", [b], T0, MAX_MEMBERS)
    await store.set_role(a, group.id, b, "admin", T0)
    chat, _ = await store.add_members(b, group.id, [c], T0, MAX_MEMBERS)
    assert chat.member_count == 3


async def test_outsider_cannot_add_and_unknown_chat(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    group, _ = await store.create_group(a, "G", [], T0, MAX_MEMBERS)
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.add_members(c, group.id, [b], T0, MAX_MEMBERS)
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.add_members(a, 10**9, [b], T0, MAX_MEMBERS)


async def test_adding_existing_members(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    group, _ = await store.create_group(a, "G", [b], T0, MAX_MEMBERS)
    with raises(Conflict, "ALREADY_MEMBER"):
        await store.add_members(a, group.id, [b], T0, MAX_MEMBERS)
    with raises(Conflict, "ALREADY_MEMBER"):
        await store.add_members(a, group.id, [a, b], T0, MAX_MEMBERS)
    # Some new, some not: the new ones are added.
    chat, _ = await store.add_members(a, group.id, [b, c], T0, MAX_MEMBERS)
    assert chat.member_count == 3


async def test_group_full(store: Store) -> None:
    a, b, c, d = await make_users(store, 4)
    group, _ = await store.create_group(a, "G", [b], T0, max_members=3)
    pts_before = (await store.get_state(a)).pts
    with raises(Conflict, "GROUP_FULL"):
        await store.add_members(a, group.id, [c, d], T0, max_members=3)
    assert (await store.get_chat(a, group.id)).member_count == 2
    assert (await store.get_state(a)).pts == pts_before  # a refusal produces no updates
    chat, _ = await store.add_members(a, group.id, [c], T0, max_members=3)
    assert chat.member_count == 3
    with raises(Conflict, "GROUP_FULL"):
        await store.add_members(a, group.id, [d], T0, max_members=3)


async def test_add_unknown_user(store: Store) -> None:
    a, b = await make_users(store, 2)
    group, _ = await store.create_group(a, "G", [], T0, MAX_MEMBERS)
    with raises(NotFound, "USER_NOT_FOUND"):
        await store.add_members(a, group.id, [b, 10**9], T0, MAX_MEMBERS)
    assert (await store.get_chat(a, group.id)).member_count == 1


# -- removing and leaving -------------------------------------------------------------------
async def test_owner_removes_a_member(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    group, _ = await store.create_group(a, "G", [b, c], T0, MAX_MEMBERS)
    pts, pushes = await store.remove_member(a, group.id, b, T0)
    assert targets_of(pushes) == {a, b, c}
    assert pts == pushed_to(pushes, a)[-1].pts
    (gone,) = pushed_to(pushes, b)
    assert isinstance(gone, up.ChatUpdate) and gone.chat.role is None  # no longer a member
    assert pushed_to(pushes, c)[0].chat.member_count == 2
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.get_chat(b, group.id)
    assert await roles(store, a, group.id) == {a: "owner", c: "member"}
    assert [d.chat.id for d in await store.list_dialogs(b)] == []


async def test_member_cannot_remove_others(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    group, _ = await store.create_group(a, "G", [b, c], T0, MAX_MEMBERS)
    with raises(Forbidden, "NOT_ADMIN"):
        await store.remove_member(b, group.id, c, T0)
    with raises(Forbidden, "NOT_ADMIN"):
        await store.remove_member(b, group.id, a, T0)


async def test_admin_cannot_remove_admins_or_owner(store: Store) -> None:
    a, b, c, d = await make_users(store, 4)
    group, _ = await store.create_group(a, "G", [b, c, d], T0, MAX_MEMBERS)
    await store.set_role(a, group.id, b, "admin", T0)
    await store.set_role(a, group.id, c, "admin", T0)
    with raises(Forbidden, "NOT_ADMIN"):
        await store.remove_member(b, group.id, c, T0)
    with raises(Forbidden, "NOT_ADMIN"):
        await store.remove_member(b, group.id, a, T0)
    await store.remove_member(b, group.id, d, T0)  # a plain member: fine
    await store.remove_member(a, group.id, c, T0)  # the owner may remove an admin
    assert await roles(store, a, group.id) == {a: "owner", b: "admin"}


async def test_remove_someone_not_in_the_group(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    group, _ = await store.create_group(a, "G", [b], T0, MAX_MEMBERS)
    with raises(NotFound, "USER_NOT_FOUND"):
        await store.remove_member(a, group.id, c, T0)


async def test_member_leaves(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    group, _ = await store.create_group(a, "G", [b, c], T0, MAX_MEMBERS)
    pts, pushes = await store.remove_member(c, group.id, c, T0)
    assert pts == pushed_to(pushes, c)[-1].pts
    assert targets_of(pushes) == {a, b, c}
    assert await roles(store, a, group.id) == {a: "owner", b: "member"}
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.remove_member(c, group.id, c, T0)


async def test_owner_leaving_hands_ownership_to_an_admin(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    # b joined first, but c is the admin: the admin inherits.
    group, _ = await store.create_group(a, "G", [b, c], T0, MAX_MEMBERS)
    await store.set_role(a, group.id, c, "admin", T0)
    await store.remove_member(a, group.id, a, T0 + 1)
    assert await roles(store, b, group.id) == {b: "member", c: "owner"}
    assert (await store.get_chat(c, group.id)).role == "owner"
    # The new owner can act as one.
    await store.set_title(c, group.id, "C's group", T0 + 2)


async def test_owner_leaving_without_admins_still_leaves_an_owner(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    group, _ = await store.create_group(a, "G", [b, c], T0, MAX_MEMBERS)
    await store.remove_member(a, group.id, a, T0 + 1)
    left = await roles(store, b, group.id)
    assert sorted(left) == sorted([b, c])
    assert sorted(left.values()) == ["member", "owner"]


async def test_heir_learns_of_the_new_role(store: Store) -> None:
    a, b = await make_users(store, 2)
    group, _ = await store.create_group(a, "G", [b], T0, MAX_MEMBERS)
    await store.set_role(a, group.id, b, "admin", T0)
    _, pushes = await store.remove_member(a, group.id, a, T0)
    (update,) = pushed_to(pushes, b)
    assert isinstance(update, up.ChatUpdate) and update.chat.role == "owner"


# -- roles and titles -----------------------------------------------------------------------
async def test_set_role(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    group, _ = await store.create_group(a, "G", [b, c], T0, MAX_MEMBERS)
    pts, pushes = await store.set_role(a, group.id, b, "admin", T0)
    assert pts == pushed_to(pushes, a)[-1].pts
    assert targets_of(pushes) == {a, b, c}
    (update,) = pushed_to(pushes, b)
    assert update.chat.role == "admin"
    assert (await store.get_chat(b, group.id)).role == "admin"
    await store.set_role(a, group.id, b, "member", T0)
    assert await roles(store, a, group.id) == {a: "owner", b: "member", c: "member"}


async def test_only_the_owner_sets_roles(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    group, _ = await store.create_group(a, "G", [b, c], T0, MAX_MEMBERS)
    await store.set_role(a, group.id, b, "admin", T0)
    with raises(Forbidden, "NOT_ADMIN"):
        await store.set_role(b, group.id, c, "admin", T0)
    with raises(Forbidden, "NOT_ADMIN"):
        await store.set_role(c, group.id, c, "admin", T0)


async def test_transfer_ownership(store: Store) -> None:
    a, b = await make_users(store, 2)
    group, _ = await store.create_group(a, "G", [b], T0, MAX_MEMBERS)
    await store.set_role(a, group.id, b, "owner", T0)
    assert await roles(store, a, group.id) == {a: "admin", b: "owner"}


async def test_set_role_on_self_or_stranger(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    group, _ = await store.create_group(a, "G", [b], T0, MAX_MEMBERS)
    with raises(Conflict, "PEER_IS_SELF"):
        await store.set_role(a, group.id, a, "member", T0)
    with raises(NotFound, "USER_NOT_FOUND"):
        await store.set_role(a, group.id, c, "admin", T0)


async def test_set_title(store: Store) -> None:
    a, b = await make_users(store, 2)
    group, _ = await store.create_group(a, "Old", [b], T0, MAX_MEMBERS)
    chat, pushes = await store.set_title(a, group.id, "New", T0)
    assert chat.title == "New"
    assert targets_of(pushes) == {a, b}
    assert [u.chat.title for u in pushed_to(pushes, b)] == ["New"]
    assert (await store.get_chat(b, group.id)).title == "New"
    with raises(Forbidden, "NOT_ADMIN"):
        await store.set_title(b, group.id, "Mine", T0)
    await store.set_role(a, group.id, b, "admin", T0)
    chat, _ = await store.set_title(b, group.id, "Admin's", T0)
    assert chat.title == "Admin's"


# -- reading chats --------------------------------------------------------------------------
async def test_members_and_member_ids(store: Store) -> None:
    a, b, c, d = await make_users(store, 4)
    group, _ = await store.create_group(a, "G", [b, c], T0, MAX_MEMBERS)
    members = await store.list_members(b, group.id, 0, 100)
    assert sorted(m.user.id for m in members) == sorted([a, b, c])
    page1 = await store.list_members(b, group.id, 0, 2)
    page2 = await store.list_members(b, group.id, 2, 2)
    assert len(page1) == 2 and len(page2) == 1
    assert {m.user.id for m in page1 + page2} == {a, b, c}
    assert sorted(await store.member_ids(b, group.id, 100)) == sorted([a, c])
    assert len(await store.member_ids(b, group.id, 1)) == 1
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.list_members(d, group.id, 0, 100)
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.member_ids(d, group.id, 100)


async def test_dialogs_list_every_chat(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    private = await store.open_private(a, b, T0)
    group, _ = await store.create_group(a, "G", [c], T0, MAX_MEMBERS)
    await store.send_message(c, group.id, 1, "hi", T0 + 5)
    dialogs = await store.list_dialogs(a)
    assert {d.chat.id for d in dialogs} == {private.id, group.id}
    by_id = {d.chat.id: d for d in dialogs}
    assert by_id[group.id].unread_count == 1
    assert by_id[group.id].last_message is not None
    assert by_id[group.id].last_message.text == "hi"
    assert by_id[private.id].last_message is None
    assert [d.chat.id for d in await store.list_dialogs(c)] == [group.id]


async def test_chat_updates_reach_the_difference(store: Store) -> None:
    a, b = await make_users(store, 2)
    _, pushes = await store.create_group(a, "G", [b], T0, MAX_MEMBERS)
    assert await full_difference(store, b) == pushed_to(pushes, b)
