"""The SDK's calls for blocks, abuse reports, contacts and message requests (issue 11)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from pigeon.protocol import limits
from pigeon.protocol import methods as m
from pigeon.protocol.types import Chat, Contact, MessageRequest, User

from .features import _Feature


class Safety(_Feature):
    async def block(self, user_id: int) -> None:
        """Their private messages and group additions stop reaching you; they are not told."""
        await self._call("users.block", m.Block(user_id=user_id))

    async def unblock(self, user_id: int) -> None:
        await self._call("users.unblock", m.Unblock(user_id=user_id))

    async def blocked(self, offset: int = 0,
                      limit: int = limits.MAX_SAFETY_PAGE) -> list[User]:
        return await self._call("users.blocked", m.ListBlocked(offset=offset, limit=limit))

    async def report(self, chat_id: int, message_id: int, reason: str = "") -> None:
        """Report a message to the server's operator (``pigeon admin reports``)."""
        await self._call("messages.report", m.ReportMessage(
            chat_id=chat_id, message_id=message_id, reason=reason))


class Contacts(_Feature):
    async def add(self, user_id: int, name: str = "") -> Contact:
        """Add someone you can see (found by @username, or by phone where they allow it);
        again to rename them. Every device of the account sees the same list."""
        return await self._call("contacts.add", m.AddContact(user_id=user_id, name=name))

    async def remove(self, user_id: int) -> None:
        await self._call("contacts.remove", m.RemoveContact(user_id=user_id))

    async def list(self, offset: int = 0,
                   limit: int = limits.MAX_SAFETY_PAGE) -> list[Contact]:
        return await self._call("contacts.list", m.ListContacts(offset=offset, limit=limit))

    async def all(self) -> AsyncIterator[Contact]:
        offset = 0
        while page := await self.list(offset):
            for contact in page:
                yield contact
            offset += len(page)


class Requests(_Feature):
    async def list(self, offset: int = 0,
                   limit: int = limits.MAX_SAFETY_PAGE) -> list[MessageRequest]:
        """Private chats that strangers opened with a message, waiting for your answer."""
        return await self._call("requests.list", m.ListRequests(offset=offset, limit=limit))

    async def accept(self, chat_id: int) -> Chat:
        return await self._call("requests.accept", m.AcceptRequest(chat_id=chat_id))

    async def decline(self, chat_id: int) -> None:
        await self._call("requests.decline", m.DeclineRequest(chat_id=chat_id))
