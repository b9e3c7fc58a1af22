"""The dispatcher: one table from method name to the domain function that serves it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pigeon.protocol.methods import METHODS

from . import chats, keys, messages, safety, sessions, stickers, streams, users

Handler = Callable[[Any, Any], Awaitable[Any]]

HANDLERS: dict[str, Handler] = {
    **sessions.HANDLERS,
    **users.HANDLERS,
    **chats.HANDLERS,
    **messages.HANDLERS,
    **streams.HANDLERS,
    **safety.HANDLERS,
    **keys.HANDLERS,
    **stickers.HANDLERS,
}

_missing = set(METHODS) - set(HANDLERS)
assert not _missing, f"methods without a handler: {sorted(_missing)}"
