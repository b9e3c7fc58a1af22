"""Contract: a sticker set from another region (store/sqlite_region_stickers.py): its copy
here is made and refreshed under its name, serves every reader's call as a set made here,
and never overwrites a set of the same name by someone else."""

from __future__ import annotations

from contract_support import T0, make_users, raises

from pigeon.protocol.errors import Conflict, Forbidden, NotFound
from pigeon.protocol.regions import CrossSticker, CrossStickerSet, RemoteUser
from pigeon.store import Store

ADA = RemoteUser(id=(1 << 40) + 21, name="Ada", username="ada")


def sticker(index: int, emoji: str) -> CrossSticker:
    return CrossSticker(index=index, emoji=[emoji], file_id=f"{index:02x}" * 32, width=512,
                        height=400, size=1000 + index)


async def test_a_copy_serves_as_a_set_made_here_and_is_refreshed(store: Store) -> None:
    (finn,) = await make_users(store, 1)
    owls = CrossStickerSet(author=ADA, name="owls", title="Night owls", licence="CC0",
                           stickers=[sticker(1, "🦉")])
    await store.keep_remote_sticker_set(owls, "a", T0)
    whole = await store.get_sticker_set(finn, "owls")
    assert (whole.info.author_id, whole.info.author_name, whole.info.published) == (
        ADA.id, "Ada", True)
    assert [(s.index, s.emoji, s.file_id, s.size) for s in whole.stickers] == [
        (1, ["🦉"], "01" * 32, 1001)]
    assert (await store.get_sticker_set(None, "owls")).info.count == 1  # anyone may see it
    await store.install_sticker_set(finn, "owls", True, T0)
    # Its region says it grew: the copy follows, installs and all.
    grown = CrossStickerSet(author=ADA, name="owls", title="Owls at night", licence="CC0",
                            stickers=[sticker(1, "🦉"), sticker(2, "🌙")])
    await store.keep_remote_sticker_set(grown, "a", T0 + 1)
    whole = await store.get_sticker_set(finn, "owls")
    assert whole.info.title == "Owls at night" and whole.info.installed
    assert [s.index for s in whole.stickers] == [1, 2]
    assert [f.sticker.index for f in await store.find_stickers(finn, "🌙", 10)] == [2]
    assert await store.sticker_file_public("02" * 32)
    # Nobody here can change it: its author is homed elsewhere.
    with raises(Forbidden, "NOT_SET_AUTHOR"):
        await store.publish_sticker_set(finn, "owls", T0)


async def test_a_set_of_the_same_name_made_here_is_kept(store: Store) -> None:
    (gus,) = await make_users(store, 1)
    await store.create_sticker_set(gus, "larks", "Gus's larks", "", T0)
    theirs = CrossStickerSet(author=ADA, name="larks", title="Ada's larks",
                             stickers=[sticker(3, "🐦")])
    with raises(Conflict, "STICKER_SET_NAME_TAKEN"):
        await store.keep_remote_sticker_set(theirs, "a", T0)
    assert (await store.get_sticker_set(gus, "larks")).info.title == "Gus's larks"


async def test_copies_are_bounded_in_bytes(store: Store) -> None:
    (finn,) = await make_users(store, 1)
    owls = CrossStickerSet(author=ADA, name="owls", title="Owls", stickers=[sticker(1, "🦉")])
    larks = CrossStickerSet(author=ADA, name="larks", title="Larks",
                            stickers=[sticker(3, "🐦"), sticker(4, "🐤")])
    await store.keep_remote_sticker_set(owls, "a", T0, limit=3000)
    assert await store.remote_sticker_bytes("larks") == 1001
    with raises(Conflict, "QUOTA_EXCEEDED"):  # 1001 + 1003 + 1004 bytes
        await store.keep_remote_sticker_set(larks, "a", T0, limit=3000)
    with raises(NotFound, "STICKER_SET_NOT_FOUND"):
        await store.get_sticker_set(finn, "larks")
    # a refresh of a copy counts it once, and sets made here count not at all
    await store.create_sticker_set(finn, "mine", "Mine", "", T0)
    grown = CrossStickerSet(author=ADA, name="owls", title="Owls",
                            stickers=[sticker(1, "🦉"), sticker(2, "🌙")])
    await store.keep_remote_sticker_set(grown, "a", T0 + 1, limit=2003)
    assert await store.remote_sticker_bytes("") == 2003
    await store.keep_remote_sticker_set(larks, "a", T0, limit=5010)
