"""Helpers the contract tests share. They use only the Store interface."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import Any

import msgspec
import pytest

from pigeon.protocol import updates as up
from pigeon.protocol.errors import PigeonError
from pigeon.store import Push, Store

T0 = 1_700_000_000.0  # an arbitrary "now"; the store never reads the clock itself
MAX_MEMBERS = 1000

# Opens a fresh, empty store; the ``store_factory`` fixture (conftest.py) provides one.
StoreFactory = Callable[[], AbstractAsyncContextManager[Store]]


async def make_users(store: Store, count: int) -> list[int]:
    """``count`` fresh users with distinct phones; returns their ids."""
    ids = []
    for i in range(count):
        user = await store.create_user(f"+1555000{i:04d}", f"user{i}", T0)
        ids.append(user.id)
    return ids


@contextmanager
def raises(cls: type[PigeonError], code: str) -> Iterator[pytest.ExceptionInfo[PigeonError]]:
    """Expect a typed error with a stable code, as callers across the wire will see it."""
    with pytest.raises(cls) as info:
        yield info
    assert info.value.code == code, f"expected {code}, got {info.value.code}: {info.value}"


async def full_difference(store: Store, user_id: int, pts: int = 0, limit: int = 1000) -> list[Any]:
    """Every update after ``pts``, following ``more`` to the end."""
    out: list[Any] = []
    while True:
        diff = await store.get_difference(user_id, pts, limit)
        out += diff.updates
        if not diff.more:
            return out
        assert diff.updates, "more=True with an empty page would loop forever"
        pts = diff.state.pts


def pushed_to(pushes: list[Push], user_id: int) -> list[Any]:
    """The updates ``user_id`` receives from ``pushes``, stamped with their pts, in pts order."""
    out = [
        msgspec.structs.replace(push.update, pts=pts)
        for push in pushes
        for uid, pts in push.targets
        if uid == user_id
    ]
    return sorted(out, key=lambda u: u.pts)


def targets_of(pushes: list[Push]) -> set[int]:
    return {uid for push in pushes for uid, _ in push.targets}


def key(update: Any) -> tuple[Any, ...]:
    """What must agree between a push and the difference. Message updates refer to the
    message, whose content may have changed since (an edit, a tombstone)."""
    if isinstance(update, (up.NewMessage, up.EditMessage)):
        return (type(update), update.pts, update.message.chat_id, update.message.id)
    return (type(update), update.pts, msgspec.structs.replace(update, pts=0))
