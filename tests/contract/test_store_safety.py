"""Contract: blocks, reports, contacts, message requests and the operator's account tools
(issue 11). The rules are pigeon.domain.blocks / requests / admin; each backend wires them in."""

from __future__ import annotations

from pathlib import Path

from contract_support import T0, full_difference, make_users, pushed_to, raises

from pigeon.protocol.errors import Conflict, Forbidden, NotFound, Unauthorized
from pigeon.store import Store


async def acquainted(store: Store, a: int, b: int) -> int:
    """A private chat in which ``a`` wrote to ``b`` (from then on ``b`` may see ``a``)."""
    chat = await store.open_private(a, b, T0)
    await store.send_message(a, chat.id, 1, "hello", T0)
    return chat.id


async def test_a_block_hides_private_messages_and_tells_nobody(store: Store) -> None:
    alice, bob = await make_users(store, 2)
    chat = await acquainted(store, alice, bob)
    await store.block(bob, alice, T0)
    assert [u.id for u in await store.blocked(bob, 0, 10)] == [alice]
    message, pts, pushes = await store.send_message(alice, chat, 2, "still there?", T0)
    assert message.text == "still there?" and pts > 0
    assert pushed_to(pushes, bob) == [] and pushed_to(pushes, alice) != []
    assert [m.text for m in await store.history(bob, chat, None, 10)] == ["hello"]
    assert [m.text for m in await store.history(alice, chat, None, 10)] == ["still there?",
                                                                           "hello"]
    assert await store.member_ids(alice, chat, 10) == []  # nor told that she types
    assert await store.member_ids(bob, chat, 10) == [alice]
    await store.unblock(bob, alice)
    assert await store.member_ids(alice, chat, 10) == [bob]
    _, _, pushes = await store.send_message(alice, chat, 3, "now?", T0)
    assert [u.message.text for u in pushed_to(pushes, bob)] == ["now?"]


async def test_blocks_need_sight_and_refuse_self(store: Store) -> None:
    alice, bob = await make_users(store, 2)
    with raises(NotFound, "USER_NOT_FOUND"):
        await store.block(bob, alice, T0)
    with raises(Conflict, "PEER_IS_SELF"):
        await store.block(bob, bob, T0)


async def test_reports_copy_the_text_once(store: Store) -> None:
    alice, bob, carol = await make_users(store, 3)
    chat = await acquainted(store, alice, bob)
    await store.report(bob, chat, 1, "spam", T0)
    await store.report(bob, chat, 1, "again", T0 + 1)
    await store.edit_message(alice, chat, 1, "edited", T0 + 2)
    (report,) = await store.reports(0, 10)
    assert (report.reporter_id, report.sender_id, report.text, report.reason) == (
        bob, alice, "hello", "spam")
    assert await store.reports(report.id, 10) == []
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.report(carol, chat, 1, "", T0)
    with raises(Conflict, "PEER_IS_SELF"):
        await store.report(alice, chat, 1, "", T0)


async def test_contacts_are_people_one_can_see(store: Store) -> None:
    alice, bob, carol = await make_users(store, 3)
    await acquainted(store, bob, alice)  # Bob wrote to Alice: she sees him
    with raises(NotFound, "USER_NOT_FOUND"):
        await store.add_contact(alice, carol, "", T0)
    added = await store.add_contact(alice, bob, "Bobby", T0)
    assert (added.user.id, added.name) == (bob, "Bobby")
    await store.add_contact(alice, bob, "Bob", T0 + 1)
    assert [(c.user.id, c.name) for c in await store.contacts(alice, 0, 10)] == [(bob, "Bob")]
    await store.remove_contact(alice, bob)
    assert await store.contacts(alice, 0, 10) == []


async def test_a_strangers_chat_is_a_request_until_answered(store: Store) -> None:
    alice, bob, carol = await make_users(store, 3)
    chat = await store.open_private(alice, bob, T0, default_who_can_message="contacts")
    _, _, pushes = await store.send_message(alice, chat.id, 1, "hi", T0)
    assert pushed_to(pushes, bob) == []
    assert [d.chat.id for d in await store.list_dialogs(bob)] == []
    assert await store.member_ids(alice, chat.id, 10) == []
    (request,) = await store.message_requests(bob, 0, 10)
    assert (request.chat.id, request.peer.id, request.last_message.text) == (chat.id, alice, "hi")
    accepted, pushes = await store.accept_request(bob, chat.id)
    assert accepted.id == chat.id
    assert [u.message.text for u in pushed_to(pushes, bob)] == ["hi"]
    assert [d.chat.id for d in await store.list_dialogs(bob)] == [chat.id]
    with raises(NotFound, "REQUEST_NOT_FOUND"):
        await store.decline_request(bob, chat.id)
    # Declined: hidden now and later.
    other = await store.open_private(carol, bob, T0, default_who_can_message="contacts")
    await store.send_message(carol, other.id, 2, "buy", T0)
    await store.decline_request(bob, other.id)
    await store.send_message(carol, other.id, 3, "buy now", T0)
    assert await store.history(bob, other.id, None, 10) == []
    assert await store.message_requests(bob, 0, 10) == []
    # "nobody": strangers cannot even open the chat; "everyone": no request at all.
    await store.set_who_can_message(carol, "nobody")
    dave, erin = await make_users_more(store, 2)
    with raises(Forbidden, "USER_PRIVACY_RESTRICTED"):
        await store.open_private(dave, carol, T0, default_who_can_message="contacts")
    await store.set_who_can_message(erin, "everyone")
    assert await store.get_who_can_message(erin) == "everyone"
    open_chat = await store.open_private(dave, erin, T0, default_who_can_message="contacts")
    _, _, pushes = await store.send_message(dave, open_chat.id, 4, "hi", T0)
    assert [u.message.text for u in pushed_to(pushes, erin)] == ["hi"]
    assert len(await full_difference(store, erin)) == 1


async def make_users_more(store: Store, count: int) -> list[int]:
    return [(await store.create_user(f"+1555100{i:04d}", f"more{i}", T0)).id
            for i in range(count)]


async def test_disable_and_delete_end_sessions(store: Store, tmp_path: Path) -> None:
    alice, bob = await make_users(store, 2)
    chat = await acquainted(store, alice, bob)
    session = await store.create_session(alice, b"\x01" * 32, "phone", "127.0.0.1", T0)
    assert await store.set_disabled(alice, True) == [session.id]
    assert await store.is_disabled(alice) and await store.list_sessions(alice) == []
    with raises(Unauthorized, "ACCOUNT_DISABLED"):
        await store.create_session(alice, b"\x03" * 32, "phone", "127.0.0.1", T0)
    ((found, disabled, sessions),) = await store.find_users("user0", 10)
    assert (found.id, disabled, sessions) == (alice, True, 0)
    assert await store.set_disabled(alice, False) == []
    assert not await store.is_disabled(alice)
    await store.create_session(alice, b"\x02" * 32, "phone", "127.0.0.1", T0)
    assert len(await store.delete_user(alice)) == 1
    assert await store.user_by_phone("+15550000000") is None
    assert [m.text for m in await store.history(bob, chat, None, 10)] == ["hello"]
    with raises(NotFound, "USER_NOT_FOUND"):
        await store.set_disabled(10**9, True)
    assert await store.find_users("100%", 10) == []  # LIKE's wildcards are literal
    target = tmp_path / "copy.db"
    await store.backup(str(target))
    assert target.stat().st_size > 0
