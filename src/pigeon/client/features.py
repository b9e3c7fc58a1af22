"""The SDK's calls, one small namespace per feature."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import msgspec

from pigeon.protocol import limits
from pigeon.protocol import methods as m
from pigeon.protocol.errors import ProofOfWorkRequired, Unauthorized, Unavailable, WrongRegion
from pigeon.protocol.types import (
    Affected, Authorization, Chat, Dialog, Invitation, Me, Member, Message, PowChallenge,
    PowSolution, ReadResult, SentCode, SentMessage, SessionInfo, User, WhoCanAdd, WhoCanMessage,
)
from pigeon.protocol.pow import solve

if TYPE_CHECKING:
    from .client import Client


def new_random_id() -> int:
    return secrets.randbits(63)


class _Feature:
    def __init__(self, client: Client) -> None:
        self._client = client

    async def _call(self, method: str, params: m.Params):  # type: ignore[no-untyped-def]
        return await self._client.call(method, params)


class Auth(_Feature):
    async def _with_proof(self, method: str, params: m.SendCode | m.SignIn):  # type: ignore[no-untyped-def]
        """Call; if the server wants proof of work (it is under load), or is shedding calls
        that bring none, solve its challenge in a thread and call again: calls with solved
        work are served in a class of their own, ahead of a flood that brings none. The
        user only notices a short delay."""
        for _ in range(3):
            try:
                # Without work, OVERLOADED is not waited out: solving is the faster way in.
                return await self._client.call(
                    method, params, overload_retries=0 if params.pow is None else None)
            except ProofOfWorkRequired:
                pass
            except Unavailable as exc:
                if exc.code != "OVERLOADED" or params.pow is not None:
                    raise
            challenge: PowChallenge = await self._call("auth.challenge", m.GetChallenge())
            nonce = await asyncio.to_thread(solve, challenge.token, challenge.difficulty)
            params = msgspec.structs.replace(
                params, pow=PowSolution(token=challenge.token, nonce=nonce))
        return await self._call(method, params)

    async def send_code(self, phone: str, *, sms: bool = False) -> SentCode:
        """Ask for a login code. It goes to the account's logged-in devices when it has any
        (``SentCode.delivery == "app"``: a message from the Pigeon service account), else
        by SMS; ``sms=True`` asks for an SMS in any case. A number homed in another region
        (WRONG_REGION) is asked there: the client moves to that region's endpoints, for
        good (they are saved in the profile)."""
        try:
            sent: SentCode = await self._with_proof("auth.send_code",
                                                    m.SendCode(phone=phone, sms=sms))
        except WrongRegion as exc:
            if not exc.endpoints:
                raise
            await self._client.move_to(exc.endpoints)
            sent = await self._with_proof("auth.send_code", m.SendCode(phone=phone, sms=sms))
        profile = self._client.profile
        profile.phone, profile.code_id = phone, sent.code_id
        profile.save()
        return sent

    async def sign_in(self, code: str, *, name: str | None = None, device: str = "",
                      phone: str | None = None, code_id: str | None = None) -> Authorization:
        profile = self._client.profile
        phone = phone or profile.phone
        code_id = code_id or profile.code_id
        if phone is None or code_id is None:
            # Issue 11, bug 6: `pigeon verify` a second time was a ValueError and a traceback.
            raise Unauthorized("no login code is waiting on this profile (it was used, or "
                               "none was asked for): ask for one first", code="CODE_EXPIRED")
        auth: Authorization = await self._with_proof("auth.sign_in", m.SignIn(
            phone=phone, code_id=code_id, code=code, name=name, device=device))
        profile.token, profile.user_id, profile.session_id = (
            auth.token, auth.user.id, auth.session_id)
        profile.ticket = auth.ticket
        profile.code_id = profile.ended = None
        # A new device starts from now: history is fetched, not replayed as updates.
        self._client._start_from(auth.state)  # noqa: SLF001
        profile.save()
        await self._client.devices.signed_in()
        # A new device has a new inbox, from position 0, and a history of its own: the
        # old device's position would skip the new inbox's first envelopes.
        self._client.inbox.signed_in()
        await self._client.secret.signed_in()
        return auth

    async def log_out(self) -> None:
        await self._call("auth.log_out", m.LogOut())
        self._client.profile.forget_session()
        self._client.profile.save()


class Account(_Feature):
    async def me(self) -> Me:
        return await self._call("account.get_me", m.GetMe())

    async def set_name(self, name: str) -> User:
        return await self._call("account.update_profile", m.UpdateProfile(name=name))

    async def set_username(self, username: str | None) -> User:
        return await self._call("account.set_username", m.SetUsername(username=username))

    async def set_phone_discoverable(self, allowed: bool) -> Me:
        return await self._call("account.set_privacy", m.SetPrivacy(phone_discoverable=allowed))

    async def set_who_can_add(self, who: WhoCanAdd) -> Me:
        """Who may add you to groups without asking: "everyone", "contacts" (people who wrote
        to you) or "nobody"; the others send an invitation, or are refused."""
        return await self._call("account.set_privacy", m.SetPrivacy(who_can_add=who))

    async def set_who_can_message(self, who: WhoCanMessage) -> Me:
        """Whose first private message reaches you directly: "everyone", "contacts" (people
        you know: contacts, people you wrote to, found or share a group with; strangers'
        arrive as message requests) or "nobody" (strangers are refused)."""
        return await self._call("account.set_privacy", m.SetPrivacy(who_can_message=who))

    async def resolve_username(self, username: str) -> User:
        return await self._call("users.resolve_username", m.ResolveUsername(username=username))

    async def resolve_phone(self, phone: str) -> User:
        return await self._call("users.resolve_phone", m.ResolvePhone(phone=phone))

    async def users(self, ids: list[int]) -> list[User]:
        return await self._call("users.get", m.GetUsers(ids=ids))


class Sessions(_Feature):
    async def list(self) -> list[SessionInfo]:
        return await self._call("sessions.list", m.ListSessions())

    async def terminate(self, session_id: int) -> None:
        await self._call("sessions.terminate", m.TerminateSession(session_id=session_id))

    async def terminate_others(self) -> int:
        result: Affected = await self._call("sessions.terminate_others",
                                            m.TerminateOtherSessions())
        return result.count


class Chats(_Feature):
    async def open_private(self, user_id: int) -> Chat:
        return await self._call("chats.open_private", m.OpenPrivate(user_id=user_id))

    async def create_group(self, title: str, member_ids: list[int], large: bool = False,
                           secret: bool = False) -> Chat:
        """``large``: a very large group (kind ``supergroup``, protocol version 2): its updates
        come once, on its own stream, which this client follows while it is a member.
        ``secret``: end-to-end encrypted (send in it with ``client.secret_groups``)."""
        return await self._call("chats.create_group", m.CreateGroup(
            title=title, member_ids=member_ids, large=large, secret=secret))

    async def add_members(self, chat_id: int, user_ids: list[int]) -> Chat:
        return await self._call("chats.add_members",
                                m.AddMembers(chat_id=chat_id, user_ids=user_ids))

    async def remove_member(self, chat_id: int, user_id: int) -> Affected:
        return await self._call("chats.remove_member",
                                m.RemoveMember(chat_id=chat_id, user_id=user_id))

    async def leave(self, chat_id: int) -> Affected:
        return await self._call("chats.leave", m.LeaveChat(chat_id=chat_id))

    async def set_role(self, chat_id: int, user_id: int, role: str) -> Affected:
        return await self._call("chats.set_role",
                                m.SetRole(chat_id=chat_id, user_id=user_id, role=role))  # type: ignore[arg-type]

    async def set_title(self, chat_id: int, title: str) -> Chat:
        return await self._call("chats.set_title", m.SetTitle(chat_id=chat_id, title=title))

    async def list(self, limit: int = 100, after: Dialog | None = None) -> list[Dialog]:
        """One page of dialogs, newest first, starting after ``after`` (the last dialog of the
        previous page). An empty page is the end; a short one is not (see :meth:`all`)."""
        params = m.ListChats(limit=limit)
        if after is not None:
            params = m.ListChats(limit=limit, offset_date=after.date, offset_chat_id=after.chat.id)
        return await self._call("chats.list", params)

    async def all(self, page: int = 100) -> AsyncIterator[Dialog]:
        """Every dialog, newest first, a page at a time."""
        after = None
        while dialogs := await self.list(page, after):
            for dialog in dialogs:
                yield dialog
            after = dialogs[-1]

    async def invitations(self) -> list[Invitation]:
        """Groups you were invited to and have not answered, newest first."""
        return await self._call("chats.invitations", m.ListInvitations())

    async def accept_invite(self, chat_id: int) -> Chat:
        return await self._call("chats.accept_invite", m.AcceptInvite(chat_id=chat_id))

    async def decline_invite(self, chat_id: int) -> None:
        await self._call("chats.decline_invite", m.DeclineInvite(chat_id=chat_id))

    async def get(self, chat_id: int) -> Chat:
        return await self._call("chats.get", m.GetChat(chat_id=chat_id))

    async def mute(self, chat_id: int, until: float = limits.MAX_DATE) -> Chat:
        """Mute the chat on all your devices until ``until`` (seconds since the epoch; by
        default for ever). Nobody else is told."""
        return await self._call("chats.mute", m.MuteChat(chat_id=chat_id, until=until))

    async def unmute(self, chat_id: int) -> Chat:
        return await self._call("chats.mute", m.MuteChat(chat_id=chat_id, until=0.0))

    async def pin(self, chat_id: int, message_id: int) -> Chat:
        """Pin a message for every member (in a group: its owner and admins may)."""
        return await self._call("chats.pin", m.PinMessage(chat_id=chat_id,
                                                          message_id=message_id))

    async def unpin(self, chat_id: int) -> Chat:
        return await self._call("chats.pin", m.PinMessage(chat_id=chat_id))

    async def members(self, chat_id: int, offset: int = 0, limit: int = 100) -> list[Member]:
        return await self._call("chats.members",
                                m.ListMembers(chat_id=chat_id, offset=offset, limit=limit))


class Messages(_Feature):
    async def send(self, chat_id: int, text: str, *, reply_to: int | None = None,
                   random_id: int | None = None, media: str | None = None,
                   ciphertext: bytes | None = None) -> SentMessage:
        """``media``: the file id of an upload (``client.files.upload``); ``text`` is then
        its caption, which may be empty. ``ciphertext`` (and an empty ``text``): in an
        end-to-end encrypted group, what ``client.secret_groups.send`` made."""
        params = m.SendMessage(chat_id=chat_id, text=text, reply_to=reply_to, media=media,
                               random_id=new_random_id() if random_id is None else random_id,
                               ciphertext=ciphertext)
        return await self._call("messages.send", params)

    async def forward(self, from_chat_id: int, message_id: int, to_chat_id: int,
                      random_id: int | None = None) -> SentMessage:
        return await self._call("messages.forward", m.ForwardMessage(
            from_chat_id=from_chat_id, message_id=message_id, to_chat_id=to_chat_id,
            random_id=new_random_id() if random_id is None else random_id))

    async def edit(self, chat_id: int, message_id: int, text: str) -> Message:
        return await self._call("messages.edit", m.EditMessageText(
            chat_id=chat_id, message_id=message_id, text=text))

    async def delete(self, chat_id: int, message_ids: list[int],
                     for_everyone: bool = False) -> Affected:
        return await self._call("messages.delete", m.DeleteMessages(
            chat_id=chat_id, message_ids=message_ids, for_everyone=for_everyone))

    async def history(self, chat_id: int, before_id: int | None = None,
                      limit: int = 50) -> list[Message]:
        """Up to ``limit`` messages before ``before_id`` (all of them: None), newest first.

        The server cuts a page short when its messages are long (an answer must fit in one
        frame), so this asks again from the oldest one until it has ``limit`` or the server
        has no more (an empty page, or message 1, the first of every chat)."""
        messages: list[Message] = []
        while len(messages) < limit:
            page: list[Message] = await self._call("messages.history", m.History(
                chat_id=chat_id, before_id=before_id,
                limit=min(limit - len(messages), limits.MAX_HISTORY_PAGE)))
            messages += page
            if not page or page[-1].id <= 1 or len(messages) >= limit:
                break
            before_id = page[-1].id
        return messages

    async def read(self, chat_id: int, max_id: int) -> ReadResult:
        return await self._call("messages.read", m.ReadHistory(chat_id=chat_id, max_id=max_id))

    async def typing(self, chat_id: int) -> None:
        await self._call("messages.typing", m.SetTyping(chat_id=chat_id))
