"""Names of the people whose messages and chats the CLI prints."""

from __future__ import annotations

from pigeon.client import Client
from pigeon.protocol.types import User


class Names:
    """Caches the names of senders for printing. The server names only people one shares a
    group with, found by username or phone, or who wrote to one (finding 18); the others are
    printed as ``user ID``."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.users: dict[int, User | None] = {}

    async def prefetch(self, user_ids: list[int]) -> None:
        """One users.get for many (people the server does not let us see stay unknown)."""
        wanted = sorted({u for u in user_ids if u not in self.users})[:100]
        if wanted:
            for user in await self.client.account.users(wanted):
                self.users[user.id] = user
            for user_id in wanted:
                self.users.setdefault(user_id, None)

    async def get(self, user_id: int) -> User | None:
        await self.prefetch([user_id])
        return self.users.get(user_id)
