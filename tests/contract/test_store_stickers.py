"""Contract: sticker sets (issue 10). Every bound at its edge (stickers per set, sets per
author, installed sets per user), who sees an unpublished set, the installed list on the
user's own stream, and a sticker message kept whole."""

from __future__ import annotations

import asyncio

from contract_support import T0, full_difference, make_users, raises

from pigeon.protocol import updates as up
from pigeon.protocol.errors import Conflict, Forbidden, InvalidArgument, NotFound
from pigeon.protocol.stickers import (
    MAX_INSTALLED_SETS, MAX_SETS_PER_USER, MAX_STICKERS_PER_SET,
)
from pigeon.protocol.types import MessageSticker
from pigeon.store import Store
from pigeon.store.base import NewSticker


def sticker(n: int, *emoji: str) -> NewSticker:
    return NewSticker(f"{n:064x}", list(emoji or ["😀"]), 512, 512, False, 1000 + n)


async def test_a_set_holds_at_most_its_bound_of_stickers(store: Store) -> None:
    (ada,) = await make_users(store, 1)
    await store.create_sticker_set(ada, "full", "Full", "", T0)
    await asyncio.gather(*(store.add_sticker(ada, "full", sticker(i))
                           for i in range(MAX_STICKERS_PER_SET)))
    whole = await store.get_sticker_set(ada, "full")
    assert [s.index for s in whole.stickers] == list(range(1, MAX_STICKERS_PER_SET + 1))
    with raises(InvalidArgument, "TOO_MANY_STICKERS"):
        await store.add_sticker(ada, "full", sticker(999))
    await store.remove_sticker(ada, "full", 5)
    assert len((await store.add_sticker(ada, "full", sticker(999))).stickers) \
        == MAX_STICKERS_PER_SET


async def test_an_author_makes_at_most_their_bound_of_sets_and_names_are_unique(
        store: Store) -> None:
    ada, bob = await make_users(store, 2)
    for i in range(MAX_SETS_PER_USER):
        await store.create_sticker_set(ada, f"set{i:02d}", "t", "", T0)
    with raises(InvalidArgument, "TOO_MANY_STICKER_SETS"):
        await store.create_sticker_set(ada, "onemore", "t", "", T0)
    with raises(Conflict, "STICKER_SET_NAME_TAKEN"):
        await store.create_sticker_set(bob, "set00", "t", "", T0)
    await store.create_sticker_set(bob, "onemore", "t", "", T0)


async def test_unpublished_sets_are_their_authors_alone(store: Store) -> None:
    ada, bob = await make_users(store, 2)
    await store.create_sticker_set(ada, "draft", "Draft", "", T0)
    await store.add_sticker(ada, "draft", sticker(1))
    for viewer in (bob, None):
        with raises(NotFound, "STICKER_SET_NOT_FOUND"):
            await store.get_sticker_set(viewer, "draft")
    with raises(NotFound, "STICKER_SET_NOT_FOUND"):
        await store.install_sticker_set(bob, "draft", True, T0)
    with raises(NotFound, "STICKER_SET_NOT_FOUND"):
        await store.add_sticker(bob, "draft", sticker(2))
    assert await store.search_sticker_sets(bob, "dra", 10) == []
    await store.publish_sticker_set(ada, "draft", T0)
    with raises(Forbidden, "NOT_SET_AUTHOR"):
        await store.add_sticker(bob, "draft", sticker(2))
    assert (await store.get_sticker_set(None, "draft")).info.published
    assert await store.sticker_file_public(f"{1:064x}")
    assert not await store.sticker_file_public(f"{2:064x}")


async def test_installs_are_bounded_and_told_on_the_users_own_stream(store: Store) -> None:
    names = [f"pack{i:03d}" for i in range(MAX_INSTALLED_SETS + 1)]
    authors = await make_users(store, len(names) // MAX_SETS_PER_USER + 1)
    owner = {name: authors[i // MAX_SETS_PER_USER] for i, name in enumerate(names)}
    # Concurrent calls share group commits: a few transactions rather than 800.
    await asyncio.gather(*(store.create_sticker_set(owner[n], n, n, "", T0) for n in names))
    await asyncio.gather(*(store.add_sticker(owner[n], n, sticker(i, "🐸" if i == 3 else "😀"))
                           for i, n in enumerate(names)))
    await asyncio.gather(*(store.publish_sticker_set(owner[n], n, T0) for n in names))
    (fan,) = await make_users(store, 1)
    await asyncio.gather(*(store.install_sticker_set(fan, name, True, T0 + i)
                           for i, name in enumerate(names[:MAX_INSTALLED_SETS - 1])))
    installed, pushes = await store.install_sticker_set(fan, names[MAX_INSTALLED_SETS - 1],
                                                        True, T0 + 1000)
    assert len(installed.names) == MAX_INSTALLED_SETS
    assert pushes[0].update == up.StickersInstalled(pts=0, names=installed.names)
    with raises(InvalidArgument, "TOO_MANY_STICKER_SETS"):
        await store.install_sticker_set(fan, names[-1], True, T0)
    again, none = await store.install_sticker_set(fan, names[0], True, T0)
    assert none == [] and again.names == installed.names
    found = await store.find_stickers(fan, "🐸", 10)
    assert [(f.set, f.sticker.index) for f in found] == [("pack003", 1)]
    left, pushes = await store.install_sticker_set(fan, "pack003", False, T0)
    assert "pack003" not in left.names and await store.find_stickers(fan, "🐸", 10) == []
    log = [u for u in await full_difference(store, fan) if isinstance(u, up.StickersInstalled)]
    assert len(log) == MAX_INSTALLED_SETS + 1 and log[-1].names == left.names
    assert (await store.installed_sticker_sets(fan)).names == left.names


async def test_a_sticker_message_keeps_its_sticker_until_deleted(store: Store) -> None:
    ada, bob = await make_users(store, 2)
    chat = await store.open_private(ada, bob, T0)
    sent = MessageSticker(set="cats", index=2, emoji="😺", file_id="ab" * 32)
    message, _, _ = await store.send_message(ada, chat.id, 7, "", T0, sticker=sent)
    assert message.sticker == sent
    (stored,) = await store.history(bob, chat.id, None, 1)
    assert stored.sticker == sent
    await store.delete_messages(ada, chat.id, [message.id], True)
    assert await store.history(bob, chat.id, None, 1) == []
