"""Issue 11: blocks, abuse reports, message requests and contacts, end to end through a real
server process that runs the real defaults (``contacts`` for who may add and who may message)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from pigeon.client import Client
from pigeon.protocol import methods as m
from pigeon.protocol.errors import Conflict, Forbidden, InvalidArgument, NotFound
from pigeon.protocol.updates import NewMessage
from pigeon.testing import ServerProcess, login

REAL_DEFAULTS = {"PIGEON_DEFAULT_WHO_CAN_MESSAGE": "contacts",
                 "PIGEON_DEFAULT_WHO_CAN_ADD": "contacts"}


@pytest.fixture(scope="module")
def safe_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("safety") / "data", env=REAL_DEFAULTS) as server:
        yield server


async def pts(client: Client) -> int:
    return (await client.call("updates.get_state", m.GetState())).pts


async def next_message(client: Client, chat_id: int, timeout: float = 5.0) -> NewMessage:
    """The next message someone else sent in the chat that reaches ``client``."""
    async def wait() -> NewMessage:
        async for update in client.updates():
            if isinstance(update, NewMessage) and update.message.chat_id == chat_id \
                    and update.message.sender_id != client.profile.user_id:
                return update
        raise AssertionError("the client closed")
    return await asyncio.wait_for(wait(), timeout)


async def texts(client: Client, chat_id: int) -> list[str]:
    return [msg.text for msg in reversed(await client.messages.history(chat_id))]


async def dialog_ids(client: Client) -> set[int]:
    return {d.chat.id for d in await client.chats.list()}


async def people(server: ServerProcess, phone, *names: str) -> list[Client]:
    return [await login(server, phone(), name.capitalize(), username=f"{name}_{phone()[-5:]}")
            for name in names]


async def close(*clients: Client) -> None:
    for client in clients:
        await client.close()


async def test_a_blocked_users_private_messages_are_refused_without_telling_them(
        safe_server: ServerProcess, phone) -> None:
    alice, bob = await people(safe_server, phone, "alice", "bob")
    try:
        alice_id = alice.profile.user_id
        chat = await bob.chats.open_private(alice_id)  # Bob writes first: Alice is known
        await bob.messages.send(chat.id, "hi Alice")
        await alice.messages.send(chat.id, "hi Bob")
        assert (await next_message(bob, chat.id)).message.text == "hi Bob"
        await bob.safety.block(alice_id)
        await bob.safety.block(alice_id)  # twice is once
        assert [u.id for u in await bob.safety.blocked()] == [alice_id]
        before = await pts(bob)
        sent = await alice.messages.send(chat.id, "are you there?")
        assert sent.message.text == "are you there?"  # acknowledged as ever: she is not told
        assert (await texts(alice, chat.id))[-1] == "are you there?"
        assert await texts(bob, chat.id) == ["hi Alice", "hi Bob"]
        assert await pts(bob) == before  # nothing was pushed or logged for him
        (dialog,) = [d for d in await bob.chats.list() if d.chat.id == chat.id]
        assert dialog.unread_count == 1 and dialog.last_message.text == "hi Bob"
        # Her edit of the hidden message must not bring it to him either.
        await alice.messages.edit(chat.id, sent.message.id, "still there?")
        assert await pts(bob) == before and await texts(bob, chat.id) == ["hi Alice", "hi Bob"]
        await bob.safety.unblock(alice_id)
        assert await bob.safety.blocked() == []
        await alice.messages.send(chat.id, "ok, later")
        assert (await next_message(bob, chat.id)).message.text == "ok, later"
        assert await texts(bob, chat.id) == ["hi Alice", "hi Bob", "ok, later"]
    finally:
        await close(alice, bob)


async def test_a_blocked_user_cannot_add_you_to_groups_and_is_not_told(
        safe_server: ServerProcess, phone) -> None:
    alice, bob, carol = await people(safe_server, phone, "alice", "bob", "carol")
    try:
        bob_id, alice_id = bob.profile.user_id, alice.profile.user_id
        await bob.account.resolve_username((await alice.account.me()).user.username)
        chat = await bob.chats.open_private(alice_id)
        await bob.messages.send(chat.id, "add me to your groups")  # so she may add him directly
        await alice.account.resolve_username((await carol.account.me()).user.username)
        # An invitation waiting from Alice goes when Carol blocks her.
        carol_id = carol.profile.user_id
        pending = await alice.chats.create_group("Before", [carol_id])
        assert pending.invited == [carol_id]
        await carol.safety.block(alice_id)
        assert await carol.chats.invitations() == []
        await bob.safety.block(alice_id)
        group = await alice.chats.create_group("Newsroom", [bob_id])
        assert group.member_count == 1 and group.invited == [bob_id]  # looks like an invitation
        assert await bob.chats.invitations() == []
        other = await alice.chats.create_group("Other", [])
        added = await alice.chats.add_members(other.id, [bob_id])
        assert added.member_count == 1 and added.invited == [bob_id]
        assert group.id not in await dialog_ids(bob) and other.id not in await dialog_ids(bob)
    finally:
        await close(alice, bob, carol)


async def test_blocking_needs_someone_you_can_see(safe_server: ServerProcess, phone) -> None:
    alice, bob = await people(safe_server, phone, "alice", "bob")
    try:
        with pytest.raises(NotFound) as unseen:  # Bob never met Alice: as an unknown id
            await bob.safety.block(alice.profile.user_id)
        assert unseen.value.code == "USER_NOT_FOUND"
        with pytest.raises(NotFound):
            await bob.safety.block(2**62)
        with pytest.raises(Conflict) as itself:
            await bob.safety.block(bob.profile.user_id)
        assert itself.value.code == "PEER_IS_SELF"
    finally:
        await close(alice, bob)


async def test_a_report_is_kept_for_the_operator_as_it_was(
        safe_server: ServerProcess, phone) -> None:
    alice, bob, carol = await people(safe_server, phone, "alice", "bob", "carol")
    try:
        chat = await bob.chats.open_private(alice.profile.user_id)
        await bob.messages.send(chat.id, "hello")
        spam = await alice.messages.send(chat.id, "buy cheap watches")
        await bob.safety.report(chat.id, spam.message.id, "spam\nagain")
        await bob.safety.report(chat.id, spam.message.id, "twice is one report")
        await alice.messages.edit(chat.id, spam.message.id, "nothing to see")
        with pytest.raises(Forbidden) as outsider:
            await carol.safety.report(chat.id, spam.message.id)
        assert outsider.value.code == "NOT_A_MEMBER"
        with pytest.raises(Conflict) as own:
            await alice.safety.report(chat.id, spam.message.id)
        assert own.value.code == "PEER_IS_SELF"
        with pytest.raises(NotFound):
            await bob.safety.report(chat.id, 999)
        with pytest.raises(InvalidArgument):
            await bob.safety.report(chat.id, spam.message.id, "x" * 201)
        with pytest.raises(InvalidArgument) as control:
            await bob.safety.report(chat.id, spam.message.id, "bell\a")
        assert control.value.code == "TEXT_INVALID"
        listed = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "pigeon", "admin", "reports", "--json",
                             "--operator", safe_server.operator_url],
            capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0, listed.stderr
        reports = [json.loads(line) for line in listed.stdout.splitlines()]
        (report,) = [r for r in reports if r["chat_id"] == chat.id]
        assert report["text"] == "buy cheap watches" and report["reason"] == "spam\nagain"
        assert report["reporter_id"] == bob.profile.user_id
        assert report["sender_id"] == alice.profile.user_id
        shown = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "pigeon", "admin", "reports", "--operator",
                             safe_server.operator_url, "--after", str(report["id"] - 1)],
            capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0
        assert f"chat:{chat.id} #{spam.message.id}" in shown.stdout
        assert "spam\\nagain" in shown.stdout  # a line break in a reason stays on one line
    finally:
        await close(alice, bob, carol)


async def test_a_strangers_first_message_is_a_request_until_accepted(
        safe_server: ServerProcess, phone) -> None:
    carol, dave = await people(safe_server, phone, "carol", "dave")
    dave_laptop = await login(safe_server, dave.profile.phone, "Dave", device="laptop")
    try:
        assert (await dave.account.me()).who_can_message == "contacts"
        found = await carol.account.resolve_username((await dave.account.me()).user.username)
        chat = await carol.chats.open_private(found.id)
        before = await pts(dave)
        await carol.messages.send(chat.id, "hi, we met at the conference")
        await carol.messages.send(chat.id, "it's Carol")
        assert await pts(dave) == before  # not pushed
        assert chat.id not in await dialog_ids(dave)  # not in his chats list
        (request,) = await dave.requests.list()
        assert request.chat.id == chat.id and request.peer.id == carol.profile.user_id
        assert request.last_message.text == "it's Carol"
        assert [r.chat.id for r in await dave_laptop.requests.list()] == [chat.id]
        arriving = asyncio.create_task(next_message(dave_laptop, chat.id))
        accepted = await dave.requests.accept(chat.id)
        assert accepted.id == chat.id
        # Accepting delivers what was waiting, to every device of his, in order.
        assert (await arriving).message.text == "hi, we met at the conference"
        assert chat.id in await dialog_ids(dave) and await dave.requests.list() == []
        (dialog,) = [d for d in await dave.chats.list() if d.chat.id == chat.id]
        assert dialog.unread_count == 2
        with pytest.raises(NotFound) as again:
            await dave.requests.accept(chat.id)
        assert again.value.code == "REQUEST_NOT_FOUND"
        await carol.messages.send(chat.id, "great")
        assert (await next_message(dave, chat.id)).message.text in (
            "hi, we met at the conference", "it's Carol", "great")
    finally:
        await close(carol, dave, dave_laptop)


async def test_a_declined_request_stays_hidden_and_replying_accepts(
        safe_server: ServerProcess, phone) -> None:
    erin, frank, gina = await people(safe_server, phone, "erin", "frank", "gina")
    try:
        frank_id = frank.profile.user_id
        await erin.account.resolve_username((await frank.account.me()).user.username)
        spam = await erin.chats.open_private(frank_id)
        await erin.messages.send(spam.id, "win a prize")
        await frank.requests.decline(spam.id)
        assert await frank.requests.list() == [] and await texts(frank, spam.id) == []
        await erin.messages.send(spam.id, "last chance")  # acknowledged; never shown to him
        assert await texts(frank, spam.id) == [] and spam.id not in await dialog_ids(frank)
        with pytest.raises(NotFound):
            await frank.requests.accept(spam.id)
        # Replying to a request accepts it.
        await gina.account.resolve_username((await frank.account.me()).user.username)
        chat = await gina.chats.open_private(frank_id)
        await gina.messages.send(chat.id, "hello Frank")
        await frank.messages.send(chat.id, "hello Gina")
        assert await frank.requests.list() == [] and chat.id in await dialog_ids(frank)
        await gina.messages.send(chat.id, "how are you?")
        assert (await next_message(frank, chat.id)).message.text == "how are you?"
        # Someone else's chat is not theirs to answer.
        with pytest.raises(Forbidden) as other:
            await gina.requests.decline(spam.id)
        assert other.value.code == "NOT_A_MEMBER"
    finally:
        await close(erin, frank, gina)


async def test_who_can_message_nobody_refuses_strangers_not_acquaintances(
        safe_server: ServerProcess, phone) -> None:
    hal, ivy, jo = await people(safe_server, phone, "hal", "ivy", "jo")
    try:
        hal_id = hal.profile.user_id
        assert (await hal.account.set_who_can_message("nobody")).who_can_message == "nobody"
        assert (await hal.account.me()).who_can_add == "contacts"  # the other stays
        with pytest.raises(Forbidden) as refused:
            await ivy.chats.open_private(hal_id)
        assert refused.value.code == "USER_PRIVACY_RESTRICTED"
        # Someone Hal shares a group with writes directly.
        group = await jo.chats.create_group("Club", [])
        await hal.account.resolve_username((await jo.account.me()).user.username)
        hal_chat = await hal.chats.open_private(jo.profile.user_id)
        await hal.messages.send(hal_chat.id, "add me to Club")
        await jo.chats.add_members(group.id, [hal_id])
        await ivy.account.set_who_can_message("everyone")
        chat = await jo.chats.open_private(hal_id)
        assert chat.id == hal_chat.id
        await jo.messages.send(chat.id, "welcome to the club")
        assert (await next_message(hal, chat.id)).message.text == "welcome to the club"
    finally:
        await close(hal, ivy, jo)


async def test_contacts_sync_and_phone_discovery_respects_privacy(
        safe_server: ServerProcess, phone) -> None:
    kim, lee = await people(safe_server, phone, "kim", "lee")
    kim_phone = kim.profile.phone
    kim_tablet = await login(safe_server, kim_phone, "Kim", device="tablet")
    try:
        lee_id = lee.profile.user_id
        with pytest.raises(NotFound):  # Lee's number is not discoverable: as unknown
            await kim.account.resolve_phone(lee.profile.phone)
        with pytest.raises(NotFound) as unseen:  # nor may Kim add an id she never saw
            await kim.contacts.add(lee_id)
        assert unseen.value.code == "USER_NOT_FOUND"
        await lee.account.set_phone_discoverable(True)
        found = await kim.account.resolve_phone(lee.profile.phone)
        contact = await kim.contacts.add(found.id, "Lee from work")
        assert contact.user.id == lee_id and contact.name == "Lee from work"
        assert contact.user.phone == lee.profile.phone
        renamed = await kim.contacts.add(lee_id, "Lee")
        assert renamed.name == "Lee"
        # Every device of the account sees the same contacts.
        assert [(c.user.id, c.name) for c in await kim_tablet.contacts.list()] == [(lee_id, "Lee")]
        with pytest.raises(Conflict):
            await kim.contacts.add(kim.profile.user_id)
        with pytest.raises(InvalidArgument):
            await kim.contacts.add(lee_id, "\x00")
        # A contact's first message is no request.
        chat = await lee.chats.open_private(kim.profile.user_id)
        await lee.messages.send(chat.id, "hi Kim")
        assert (await next_message(kim, chat.id)).message.text == "hi Kim"
        assert await kim.requests.list() == []
        await kim.contacts.remove(lee_id)
        assert await kim_tablet.contacts.list() == []
        assert await lee.contacts.list() == []  # one-sided
    finally:
        await close(kim, lee, kim_tablet)


async def test_cli_block_contacts_and_requests(safe_server: ServerProcess, phone,
                                               tmp_path) -> None:
    """The verbs as a person types them, on profiles made by the SDK."""
    mo, nia = [await login(safe_server, phone(), name.capitalize(),
                           username=f"{name}_{phone()[-5:]}", profile=tmp_path / name)
               for name in ("mo", "nia")]
    try:
        nia_name = (await nia.account.me()).user.username
        mo_name = (await mo.account.me()).user.username

        async def pigeon(who: Client, *args: str) -> subprocess.CompletedProcess[str]:
            return await asyncio.to_thread(
                subprocess.run, [sys.executable, "-m", "pigeon", "--profile",
                                 str(who.profile.directory), *args],
                capture_output=True, text=True, timeout=60)

        await mo.account.resolve_username(nia_name)
        chat = await mo.chats.open_private(nia.profile.user_id)
        await mo.messages.send(chat.id, "hello from a stranger")
        listed = await pigeon(nia, "requests")
        assert listed.returncode == 0 and f"chat:{chat.id} from user:" in listed.stdout
        assert "hello from a stranger" in listed.stdout
        accepted = await pigeon(nia, "requests", "accept", f"@{mo_name}")
        assert accepted.returncode == 0 and accepted.stdout.strip() == f"accepted chat:{chat.id}"
        assert (await pigeon(nia, "requests")).stdout.strip() == "no message requests"
        assert (await pigeon(nia, "requests", "privacy")).stdout.strip() == \
            "who can message you directly: contacts"
        assert (await pigeon(nia, "contacts", "add", f"@{mo_name}", "--name", "Mo")).returncode == 0
        assert "as \"Mo\"" in (await pigeon(nia, "contacts", "list")).stdout
        assert (await pigeon(nia, "contacts", "remove", f"@{mo_name}")).returncode == 0
        assert "no contacts yet" in (await pigeon(nia, "contacts", "list")).stdout
        blocked = await pigeon(nia, "block", f"@{mo_name}")
        assert blocked.returncode == 0 and blocked.stdout.strip() == \
            f"blocked user:{mo.profile.user_id}"
        assert f"user:{mo.profile.user_id}" in (await pigeon(nia, "blocked")).stdout
        reported = await pigeon(nia, "report", f"chat:{chat.id}", "1", "--reason", "spam")
        assert reported.returncode == 0, reported.stderr
        missing = await pigeon(nia, "report", f"chat:{chat.id}", "99")
        assert missing.returncode == 1 and missing.stderr.strip().endswith("[MESSAGE_NOT_FOUND]")
        assert (await pigeon(nia, "unblock", f"@{mo_name}")).returncode == 0
        assert (await pigeon(nia, "blocked")).stdout.strip() == "you blocked nobody"
    finally:
        await close(mo, nia)
