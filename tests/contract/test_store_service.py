"""Contract: the service account that delivers login codes in the app."""

from __future__ import annotations

from contract_support import T0, full_difference, make_users, raises

from pigeon.protocol import updates as up
from pigeon.protocol.errors import Forbidden
from pigeon.protocol.types import FwdFrom
from pigeon.store import Store


async def test_service_messages_reach_only_their_user(store: Store) -> None:
    alice, bob = await make_users(store, 2)
    assert await store.service_user_id() is None  # created on first use
    first, pushes = await store.send_service_message(alice, "Login code: 111111", T0)
    service = await store.service_user_id()
    assert service is not None and first.sender_id == service and first.id == 1
    ((update, targets),) = pushes
    assert isinstance(update, up.NewMessage) and [u for u, _ in targets] == [alice]
    second, _ = await store.send_service_message(alice, "Login code: 222222", T0 + 1)
    assert (second.chat_id, second.id) == (first.chat_id, 2)  # one chat per user
    other, _ = await store.send_service_message(bob, "Login code: 333333", T0 + 2)
    assert other.chat_id != first.chat_id and other.sender_id == service
    texts = [u.message.text for u in await full_difference(store, alice)
             if isinstance(u, up.NewMessage)]
    assert texts == ["Login code: 111111", "Login code: 222222"]
    assert [m.text for m in await store.history(alice, first.chat_id, None, 10)] == \
        ["Login code: 222222", "Login code: 111111"]
    assert (await store.get_state(service)).pts == 0  # it reads nothing, logs nothing
    (account,) = await store.get_users([service])
    assert account.name == "Pigeon" and account.username is None


async def test_nobody_writes_to_the_service_account(store: Store) -> None:
    alice, bob = await make_users(store, 2)
    notice, _ = await store.send_service_message(alice, "Login code: 111111", T0)
    service = notice.sender_id
    with raises(Forbidden, "FORBIDDEN"):
        await store.send_message(alice, notice.chat_id, 1, "hello?", T0)
    for user in (alice, bob):
        with raises(Forbidden, "FORBIDDEN"):
            await store.open_private(user, service, T0)
    chat = await store.open_private(alice, bob, T0)
    with raises(Forbidden, "FORBIDDEN"):  # login codes are not forwarded
        await store.send_message(alice, chat.id, 2, notice.text, T0, fwd_from=FwdFrom(
            sender_id=service, chat_id=notice.chat_id, message_id=notice.id, date=T0))
    pts, unread, pushes = await store.read_history(alice, notice.chat_id, notice.id)
    assert unread == 0 and all(u != service for p in pushes for u, _ in p.targets)
