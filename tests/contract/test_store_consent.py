"""Contract: consent to groups, who may see whom, quotas and paged dialogs (issue 7,
findings 6, 7 and 18)."""

from __future__ import annotations

from contract_support import MAX_MEMBERS, T0, full_difference, make_users, raises

from pigeon.protocol import updates as up
from pigeon.protocol.errors import Conflict, Forbidden, NotFound
from pigeon.store import GroupPolicy, Store

POLICY = GroupPolicy(default_who_can_add="contacts", max_groups_joined=3,
                     max_groups_created_per_day=4, max_pending_invitations=2)


async def member_ids(store: Store, viewer: int, chat_id: int) -> set[int]:
    return {m.user.id for m in await store.list_members(viewer, chat_id, 0, 100)}


async def test_a_stranger_is_not_found_and_one_you_can_see_is_invited(store: Store) -> None:
    a, b = await make_users(store, 2)
    with raises(NotFound, "USER_NOT_FOUND"):  # a knows nothing of b: as for an unknown id
        await store.create_group(a, "G", [b], T0, MAX_MEMBERS, POLICY)
    await store.remember_discovery(a, b)  # a found b by username
    chat, pushes = await store.create_group(a, "G", [b], T0, MAX_MEMBERS, POLICY)
    assert chat.member_count == 1 and chat.invited == [b]
    assert await member_ids(store, a, chat.id) == {a}
    (update,) = [u for u in await full_difference(store, b) if isinstance(u, up.ChatUpdate)]
    assert update.chat.id == chat.id and update.chat.role is None
    assert update.chat.invited_by == a
    (invitation,) = await store.list_invitations(b, 10)
    assert invitation.chat.id == chat.id and invitation.inviter.id == a
    joined, _ = await store.accept_invitation(b, chat.id, T0 + 1, MAX_MEMBERS, POLICY)
    assert joined.role == "member" and joined.member_count == 2
    assert await store.list_invitations(b, 10) == []
    with raises(NotFound, "INVITATION_NOT_FOUND"):
        await store.accept_invitation(b, chat.id, T0 + 1, MAX_MEMBERS, POLICY)


async def test_who_wrote_to_you_adds_you_directly(store: Store) -> None:
    a, b = await make_users(store, 2)
    private = await store.open_private(a, b, T0)
    await store.send_message(a, private.id, 1, "hi", T0)  # a wrote to b
    with raises(NotFound, "USER_NOT_FOUND"):  # b never wrote to a, nor did a look b up
        await store.create_group(a, "G", [b], T0, MAX_MEMBERS, POLICY)
    await store.remember_discovery(a, b)
    chat, _ = await store.create_group(a, "G", [b], T0, MAX_MEMBERS, POLICY)
    assert chat.invited == [b]  # a can see b, but b never wrote to a: invited
    chat, _ = await store.create_group(b, "G", [a], T0, MAX_MEMBERS, POLICY)
    assert chat.invited == [] and chat.member_count == 2  # a wrote to b: b may add a
    await store.send_message(b, private.id, 2, "hello", T0)
    chat, _ = await store.create_group(a, "G2", [b], T0, MAX_MEMBERS, POLICY)
    assert chat.invited == [] and chat.member_count == 2


async def test_privacy_nobody_and_everyone(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    await store.remember_discovery(a, b)
    await store.set_who_can_add(b, "nobody")
    assert await store.get_who_can_add(b) == "nobody"
    with raises(Forbidden, "USER_PRIVACY_RESTRICTED"):
        await store.create_group(a, "G", [b], T0, MAX_MEMBERS, POLICY)
    await store.set_who_can_add(c, "everyone")
    chat, _ = await store.create_group(a, "G", [c], T0, MAX_MEMBERS, POLICY)
    assert chat.member_count == 2 and chat.invited == []


async def test_decline_and_adding_directly_clear_the_invitation(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    for peer in (b, c):
        await store.remember_discovery(a, peer)
    chat, _ = await store.create_group(a, "G", [b, c], T0, MAX_MEMBERS, POLICY)
    assert sorted(chat.invited) == [b, c]
    with raises(Conflict, "ALREADY_MEMBER"):  # invited already
        await store.add_members(a, chat.id, [b], T0, MAX_MEMBERS, POLICY)
    pushes = await store.decline_invitation(b, chat.id)
    assert [t[0] for t in pushes[0].targets] == [b]
    assert await store.list_invitations(b, 10) == []
    await store.set_who_can_add(c, "everyone")
    await store.add_members(a, chat.id, [c], T0, MAX_MEMBERS, POLICY)
    assert await store.list_invitations(c, 10) == []
    assert await member_ids(store, a, chat.id) == {a, c}


async def test_quotas(store: Store) -> None:
    a, b, c, d = await make_users(store, 4)
    for peer in (b, c, d):
        await store.remember_discovery(a, peer)
    await store.set_who_can_add(b, "everyone")
    for i in range(3):  # a is in 3 groups: the most POLICY allows
        await store.create_group(a, f"G{i}", [], T0 + i, MAX_MEMBERS, POLICY)
    with raises(Conflict, "QUOTA_EXCEEDED"):
        await store.create_group(a, "one too many", [], T0, MAX_MEMBERS, POLICY)
    # b may be added to three groups, not four (created by c, who is in none yet)
    await store.remember_discovery(c, b)
    groups = [(await store.create_group(c, f"H{i}", [b], T0, MAX_MEMBERS, POLICY))[0]
              for i in range(3)]
    extra, _ = await store.create_group(d, "D", [], T0, MAX_MEMBERS, POLICY)
    await store.remember_discovery(d, b)
    with raises(Conflict, "QUOTA_EXCEEDED"):
        await store.add_members(d, extra.id, [b], T0, MAX_MEMBERS, POLICY)
    assert len(groups) == 3
    # two pending invitations at most for one person
    await store.remember_discovery(d, a)
    fresh = POLICY._replace(max_groups_joined=100)
    for i in range(2):
        await store.create_group(d, f"I{i}", [a], T0, MAX_MEMBERS, fresh)
    with raises(Conflict, "QUOTA_EXCEEDED"):
        await store.create_group(d, "I2", [a], T0, MAX_MEMBERS, fresh)
    # and four groups created in 24 hours (d made three; the refused one rolled back)
    await store.create_group(d, "D4", [], T0 + 10, MAX_MEMBERS, fresh)
    with raises(Conflict, "QUOTA_EXCEEDED"):
        await store.create_group(d, "D5", [], T0 + 10, MAX_MEMBERS, fresh)
    await store.create_group(d, "a day later", [], T0 + 86_400 + 1, MAX_MEMBERS, fresh)


async def test_visible_users(store: Store) -> None:
    a, b, c, d, e = await make_users(store, 5)
    assert [u.id for u in await store.visible_users(a, [a, b, c, d, e, 10**9])] == [a]
    await store.remember_discovery(a, b)                 # found by username
    await store.create_group(c, "G", [a], T0, MAX_MEMBERS)  # shares a group
    private = await store.open_private(d, a, T0)           # d opened a chat with a ...
    assert {u.id for u in await store.visible_users(a, [b, c, d, e])} == {b, c}
    await store.send_message(d, private.id, 1, "hi", T0)   # ... and wrote to a
    assert {u.id for u in await store.visible_users(a, [b, c, d, e])} == {b, c, d}
    # who a opened a private chat with and wrote to, unasked, does not become visible to a
    other = await store.open_private(a, e, T0)
    await store.send_message(a, other.id, 2, "who are you?", T0)
    assert e not in {u.id for u in await store.visible_users(a, [e])}
    assert {u.id for u in await store.visible_users(e, [a])} == {a}


async def test_dialogs_page_by_date_then_id(store: Store) -> None:
    a, *others = await make_users(store, 6)
    chats = []
    for i, peer in enumerate(others):
        chat = await store.open_private(a, peer, T0)
        await store.send_message(peer, chat.id, i + 1, f"m{i}", T0 + 10 + i)
        chats.append(chat.id)
    chats.reverse()  # the newest message first
    seen: list[int] = []
    before = None
    while page := await store.list_dialogs(a, 2, before):
        assert len(page) <= 2
        seen += [d.chat.id for d in page]
        before = (page[-1].date, page[-1].chat.id)
    assert seen == chats
    assert [d.chat.id for d in await store.list_dialogs(a, 100)] == chats
    # a page stops growing at max_bytes, but always holds one dialog
    assert len(await store.list_dialogs(a, 100, None, max_bytes=1)) == 1
