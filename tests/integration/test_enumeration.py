"""Issue 7, finding 18: `users.get` with ids 1-100 listed every account's name and username,
and CHAT_NOT_FOUND versus NOT_A_MEMBER told which chat ids exist. Now users are shown only to
those who share a group with them, found them by username or phone, were written to by them,
or were invited by them; and every chat a caller is not in answers alike. Real server."""

from __future__ import annotations

import pytest

from pigeon.protocol import methods as m
from pigeon.protocol.errors import PigeonError
from pigeon.testing import ServerProcess, login


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    with ServerProcess(tmp_path_factory.mktemp("enum") / "data") as srv:
        yield srv


async def test_users_get_lists_only_people_one_may_see(server, phone) -> None:
    alice = await login(server, phone(), "Alice", username="alice_enum")
    bob = await login(server, phone(), "Bob", username="bob_enum")
    carol = await login(server, phone(), "Carol")
    mallory = await login(server, phone(), "Mallory")
    try:
        everyone = list(range(1, 101))
        assert [u.id for u in await mallory.account.users(everyone)] == [mallory.profile.user_id]
        found = await mallory.account.resolve_username("@alice_enum")  # found by username
        seen = await mallory.account.users(everyone)
        assert {u.id for u in seen} == {mallory.profile.user_id, found.id}
        # Someone who writes to you by id is named to you; you are not named to them for it.
        private = await mallory.chats.open_private(carol.profile.user_id)
        await mallory.messages.send(private.id, "hi, who are you?")
        assert carol.profile.user_id not in {u.id for u in await mallory.account.users(everyone)}
        carol_sees = await carol.account.users([mallory.profile.user_id])
        assert [u.name for u in carol_sees] == ["Mallory"]
        # Members of a group see each other (the test server adds people directly).
        group = await alice.chats.create_group("G", [bob.profile.user_id])
        assert {u.name for u in await bob.account.users([alice.profile.user_id])} == {"Alice"}
        members = await bob.chats.members(group.id)
        assert {x.user.name for x in members} == {"Alice", "Bob"}
    finally:
        for client in (alice, bob, carol, mallory):
            await client.close()


async def test_one_answer_for_no_such_chat_and_not_yours(server, phone) -> None:
    alice = await login(server, phone(), "Alice")
    bob = await login(server, phone(), "Bob")
    mallory = await login(server, phone(), "Mallory")
    try:
        mallory.max_rate_wait = 0.0
        theirs = (await alice.chats.open_private(bob.profile.user_id)).id
        await alice.messages.send(theirs, "private")
        group = (await alice.chats.create_group("Secret", [bob.profile.user_id])).id
        missing = 10**9

        def calls(chat_id: int) -> list[tuple[str, m.Params]]:
            return [
                ("messages.history", m.History(chat_id=chat_id)),
                ("messages.send", m.SendMessage(chat_id=chat_id, random_id=chat_id, text="x")),
                ("messages.read", m.ReadHistory(chat_id=chat_id, max_id=1)),
                ("messages.edit", m.EditMessageText(chat_id=chat_id, message_id=1, text="x")),
                ("messages.delete", m.DeleteMessages(chat_id=chat_id, message_ids=[1])),
                ("messages.typing", m.SetTyping(chat_id=chat_id)),
                ("messages.forward", m.ForwardMessage(from_chat_id=chat_id, message_id=1,
                                                      to_chat_id=chat_id, random_id=7)),
                ("chats.get", m.GetChat(chat_id=chat_id)),
                ("chats.members", m.ListMembers(chat_id=chat_id)),
                ("chats.add_members", m.AddMembers(chat_id=chat_id,
                                                   user_ids=[mallory.profile.user_id])),
                ("chats.set_title", m.SetTitle(chat_id=chat_id, title="mine")),
                ("chats.leave", m.LeaveChat(chat_id=chat_id)),
                ("chats.accept_invite", m.AcceptInvite(chat_id=chat_id)),
            ]

        async def answer(method: str, params: m.Params, chat_id: int) -> tuple[str, str]:
            with pytest.raises(PigeonError) as refused:
                await mallory.call(method, params)
            return refused.value.code, refused.value.message.replace(str(chat_id), "N")

        for existing in (theirs, group):
            for (method, p_missing), (_, p_existing) in zip(calls(missing), calls(existing),
                                                               strict=True):
                assert await answer(method, p_missing, missing) == \
                    await answer(method, p_existing, existing), method
    finally:
        for client in (alice, bob, mallory):
            await client.close()
