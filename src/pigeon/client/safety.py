"""The SDK's calls for blocks, abuse reports, contacts and message requests (issue 11)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from pigeon.protocol import limits
from pigeon.protocol import methods as m
from pigeon.protocol.types import Chat, Contact, MessageRequest, User

from .features import _Feature

T = TypeVar("T")


async def _every(page: Callable[[int], Awaitable[list[T]]]) -> AsyncIterator[T]:
    """Every item of an offset-paged listing, page after page, until an empty page."""
    offset = 0
    while items := await page(offset):
        for item in items:
            yield item
        offset += len(items)


class Safety(_Feature):
    async def block(self, user_id: int) -> None:
        """Their private messages and group additions stop reaching you; they are not told."""
        await self._call("users.block", m.Block(user_id=user_id))

    async def unblock(self, user_id: int) -> None:
        await self._call("users.unblock", m.Unblock(user_id=user_id))

    async def blocked(self, offset: int = 0,
                      limit: int = limits.MAX_SAFETY_PAGE) -> list[User]:
        return await self._call("users.blocked", m.ListBlocked(offset=offset, limit=limit))

    def all_blocked(self) -> AsyncIterator[User]:
        return _every(self.blocked)

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

    def all(self) -> AsyncIterator[Contact]:
        return _every(self.list)


class Requests(_Feature):
    async def list(self, offset: int = 0,
                   limit: int = limits.MAX_SAFETY_PAGE) -> list[MessageRequest]:
        """Private chats that strangers opened with a message, waiting for your answer."""
        return await self._call("requests.list", m.ListRequests(offset=offset, limit=limit))

    def all(self) -> AsyncIterator[MessageRequest]:
        return _every(self.list)

    async def accept(self, chat_id: int) -> Chat:
        return await self._call("requests.accept", m.AcceptRequest(chat_id=chat_id))

    async def decline(self, chat_id: int) -> None:
        await self._call("requests.decline", m.DeclineRequest(chat_id=chat_id))
