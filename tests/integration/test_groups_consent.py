"""Issue 7, finding 6: anyone could add anyone to a group (up to 200,000 members), and a
message to a big group cost every other user's sends. Now: consent (invitations and a
"who can add me" setting), a group size limit, and a fan-out budget per account. Real
server processes throughout; the consent server runs the real default, ``contacts``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator

import pytest

from pigeon.client import Client
from pigeon.protocol.errors import Conflict, Forbidden, NotFound, RateLimited
from pigeon.protocol.updates import ChatUpdate
from pigeon.server.settings import Settings
from pigeon.testing import ServerProcess, login

CONSENT = {"PIGEON_DEFAULT_WHO_CAN_ADD": "contacts", "PIGEON_MAX_GROUP_MEMBERS": "3"}


@pytest.fixture(scope="module")
def consent_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("consent") / "data", env=CONSENT) as server:
        yield server


async def chat_update(client: Client, chat_id: int, where=lambda chat: True,
                      timeout: float = 5.0) -> ChatUpdate:
    async def wait() -> ChatUpdate:
        async for update in client.updates():
            if isinstance(update, ChatUpdate) and update.chat.id == chat_id \
                    and where(update.chat):
                return update
        raise AssertionError("the client closed")
    return await asyncio.wait_for(wait(), timeout)


async def test_adding_a_stranger_creates_an_invitation_not_a_membership(
        consent_server: ServerProcess, phone) -> None:
    alice = await login(consent_server, phone(), "Alice", username="alice_consent")
    bob = await login(consent_server, phone(), "Bob", username="bob_consent")
    carol = await login(consent_server, phone(), "Carol", username="carol_consent")
    try:
        found = await alice.account.resolve_username("@bob_consent")  # Alice can see Bob ...
        group = await alice.chats.create_group("Newsroom", [found.id])  # ... but he never wrote
        assert group.member_count == 1 and group.invited == [found.id]
        assert {m.user.id for m in await alice.chats.members(group.id)} == {alice.profile.user_id}
        invited = await chat_update(bob, group.id)
        assert invited.chat.role is None and invited.chat.invited_by == alice.profile.user_id
        with pytest.raises(Forbidden) as refused:
            await bob.messages.history(group.id)  # not a member until he accepts
        assert refused.value.code == "NOT_A_MEMBER"
        (invitation,) = await bob.chats.invitations()
        assert invitation.chat.title == "Newsroom" and invitation.inviter.name == "Alice"
        joined = await bob.chats.accept_invite(group.id)
        assert joined.role == "member" and joined.member_count == 2
        await chat_update(alice, group.id, lambda chat: chat.member_count == 2)
        assert await bob.chats.invitations() == []
        # add_members follows the same rule; Carol declines.
        carol_id = (await alice.account.resolve_username("@carol_consent")).id
        again = await alice.chats.add_members(group.id, [carol_id])
        assert again.member_count == 2 and again.invited == [carol_id]
        await carol.chats.decline_invite(group.id)
        assert await carol.chats.invitations() == []
        with pytest.raises(NotFound) as gone:
            await carol.chats.accept_invite(group.id)
        assert gone.value.code == "INVITATION_NOT_FOUND"
        # Someone who never looked Carol up cannot even invite her: as for an unknown id.
        with pytest.raises(NotFound) as unknown:
            await bob.chats.create_group("Bob's", [carol_id])
        assert unknown.value.code == "USER_NOT_FOUND"
        # Who wrote to you adds you directly: Carol writes to Alice, then Alice adds her.
        private = await carol.chats.open_private(alice.profile.user_id)
        await carol.messages.send(private.id, "hi Alice")
        added = await alice.chats.add_members(group.id, [carol_id])
        assert added.member_count == 3 and added.invited == []
    finally:
        for client in (alice, bob, carol):
            await client.close()


async def test_privacy_nobody_refuses_and_everyone_adds(consent_server: ServerProcess,
                                                       phone) -> None:
    alice = await login(consent_server, phone(), "Alice", username="alice_privacy")
    dave = await login(consent_server, phone(), "Dave", username="dave_privacy")
    erin = await login(consent_server, phone(), "Erin", username="erin_privacy")
    try:
        assert (await dave.account.me()).who_can_add == "contacts"  # the server's default
        assert (await dave.account.set_who_can_add("nobody")).who_can_add == "nobody"
        assert (await erin.account.set_who_can_add("everyone")).who_can_add == "everyone"
        dave_id = (await alice.account.resolve_username("@dave_privacy")).id
        with pytest.raises(Forbidden) as refused:
            await alice.chats.create_group("G", [dave_id])
        assert refused.value.code == "USER_PRIVACY_RESTRICTED"
        erin_id = (await alice.account.resolve_username("@erin_privacy")).id
        group = await alice.chats.create_group("G", [erin_id])
        assert group.member_count == 2 and group.invited == []
        # Setting one privacy field leaves the other as it was.
        me = await dave.account.set_phone_discoverable(True)
        assert me.phone_discoverable and me.who_can_add == "nobody"
    finally:
        for client in (alice, dave, erin):
            await client.close()


async def test_group_size_limit(consent_server: ServerProcess, phone) -> None:
    assert Settings().max_group_members <= 5_000  # a default the per-user pts design carries
    clients = [await login(consent_server, phone(), f"U{i}", username=f"size_limit_{i}")
               for i in range(5)]
    owner, *others = clients
    try:
        for other in others:
            await other.account.set_who_can_add("everyone")
        ids = [o.profile.user_id for o in others]
        with pytest.raises(Conflict) as full:
            await owner.chats.create_group("Too big", ids[:3])  # 4 > max_group_members = 3
        assert full.value.code == "GROUP_FULL"
        group = await owner.chats.create_group("Full", ids[:2])
        assert group.member_count == 3
        with pytest.raises(Conflict) as full:
            await owner.chats.add_members(group.id, ids[2:3])
        assert full.value.code == "GROUP_FULL"
        # An invitation, once accepted, respects the limit too.
        await others[3].account.set_who_can_add("contacts")
        await owner.account.resolve_username("@size_limit_4")
        await owner.chats.remove_member(group.id, ids[0])
        invited = await owner.chats.add_members(group.id, [ids[3]])
        assert invited.invited == [ids[3]]
        await owner.chats.add_members(group.id, [ids[0]])  # full again before she accepts
        with pytest.raises(Conflict) as full:
            await others[3].chats.accept_invite(group.id)
        assert full.value.code == "GROUP_FULL"
    finally:
        for client in clients:
            await client.close()


def _cli(profile, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pigeon", "--profile", str(profile), *args],
                          capture_output=True, text=True, timeout=60)


def test_cli_invites_accept_and_decline(consent_server: ServerProcess, phone, tmp_path) -> None:
    def ok(profile, *args: str) -> str:
        result = _cli(profile, *args)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout

    people = {}
    for name in ("alice", "bob"):
        profile, number = tmp_path / name, phone()
        ok(profile, "register", "--server", consent_server.url, number)
        ok(profile, "verify", consent_server.code_for(number), "--name", name.title())
        ok(profile, "username", "set", f"{name}_cli_inv")
        people[name] = profile
    alice, bob = people["alice"], people["bob"]
    created = ok(alice, "group", "create", "CLI", "--member", "@bob_cli_inv")
    assert "with 1 member;" in created and "invited user:" in created
    chat = created.split()[1]
    listed = ok(bob, "group", "invites")
    assert chat in listed and "'CLI'" in listed and "Alice (@alice_cli_inv)" in listed
    assert f"joined {chat}" in ok(bob, "group", "accept", chat)
    assert "no invitations" in ok(bob, "group", "invites")
    assert "CLI (group, 2 members, you: member)" in ok(bob, "chats")
    again = ok(alice, "group", "create", "Second", "--member", "@bob_cli_inv")
    second = again.split()[1]
    assert f"declined {second}" in ok(bob, "group", "decline", second)
    refused = _cli(bob, "group", "accept", second)
    assert refused.returncode == 1 and "INVITATION_NOT_FOUND" in refused.stderr
    assert "who can add you to groups: contacts" in ok(bob, "group", "privacy")
    assert "nobody" in ok(bob, "group", "privacy", "nobody")


async def test_fanout_budget_refuses_the_flooder_while_others_send(tmp_path, phone) -> None:
    """An account over its fan-out budget is refused (RATE_LIMITED, before the writer);
    another account's send still goes through."""
    env = {"PIGEON_RATE_FANOUT": "1/1h burst 40"}
    with ServerProcess(tmp_path / "data", env=env) as server:
        flooder = await login(server, phone(), "Flooder")
        members = [await login(server, phone(), f"M{i}") for i in range(4)]
        carol = await login(server, phone(), "Carol")
        dave = await login(server, phone(), "Dave")
        clients = [flooder, *members, carol, dave]
        try:
            flooder.max_rate_wait = 0.0  # raise RATE_LIMITED instead of waiting an hour
            group = await flooder.chats.create_group("Big", [m.profile.user_id for m in members])
            sent = 0
            with pytest.raises(RateLimited) as refused:
                for i in range(20):  # each message costs 5 (one update per member)
                    await flooder.messages.send(group.id, f"flood {i}")
                    sent += 1
            assert refused.value.code == "RATE_LIMITED" and refused.value.retry_after > 60
            assert 3 <= sent <= 7, sent  # about (40 - 5 for the group's creation) / 5
            history = await members[0].messages.history(group.id, limit=100)
            assert len(history) == sent  # the refused send never reached the store
            chat = await carol.chats.open_private(dave.profile.user_id)
            for i in range(5):
                assert (await carol.messages.send(chat.id, f"hello {i}")).message.id == i + 1
        finally:
            for client in clients:
                await client.close()
