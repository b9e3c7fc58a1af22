"""Sticker sets over the WebSocket (issue 10): an artist's create, remove, move and publish;
everyone's search, browse, install, uninstall, find by emoji and send.

Adding a sticker takes an image too big for a frame: it comes by HTTP
(:mod:`.sticker_web`). The rules are :mod:`pigeon.domain.stickers`.
"""

from __future__ import annotations

from pigeon.domain import stickers as rules
from pigeon.protocol import methods as m
from pigeon.protocol.region_groups import GroupSend
from pigeon.protocol.stickers import FoundSticker, Installed, StickerSet, StickerSetInfo
from pigeon.protocol.types import MessageSticker, SentMessage

from .fanout import afterwards, reserve
from .region_groups import call_group, elsewhere
from .region_stickers import seen_set
from .services import Caller


async def create_set(caller: Caller, p: m.CreateStickerSet) -> StickerSet:
    s = caller.services
    return await s.store.create_sticker_set(caller.user_id, rules.set_name(p.name),
                                            rules.set_title(p.title), rules.licence(p.licence),
                                            s.clock())


async def remove(caller: Caller, p: m.RemoveSticker) -> StickerSet:
    return await caller.services.store.remove_sticker(caller.user_id, rules.set_name(p.name),
                                                      p.index)


async def move(caller: Caller, p: m.MoveSticker) -> StickerSet:
    return await caller.services.store.move_sticker(caller.user_id, rules.set_name(p.name),
                                                    p.index, p.to)


async def publish(caller: Caller, p: m.PublishStickerSet) -> StickerSet:
    s = caller.services
    return await s.store.publish_sticker_set(caller.user_id, rules.set_name(p.name), s.clock())


async def search(caller: Caller, p: m.SearchStickerSets) -> list[StickerSetInfo]:
    return await caller.services.store.search_sticker_sets(caller.user_id, p.query.strip(),
                                                           p.limit)


async def get_set(caller: Caller, p: m.GetStickerSet) -> StickerSet:
    # a set published in another region is fetched from there (region_stickers.py)
    return await seen_set(caller.services, caller.user_id, rules.set_name(p.name))


async def _install(caller: Caller, name: str, install: bool) -> Installed:
    s = caller.services
    if install and s.regions is not None:  # one from another region: its copy here first
        await seen_set(s, caller.user_id, rules.set_name(name))  # (region_stickers.py)
    installed, pushes = await s.store.install_sticker_set(caller.user_id, rules.set_name(name),
                                                          install, s.clock())
    # Every device of the caller's, this one too: the list is the same everywhere.
    afterwards(caller).deliver(pushes)
    return installed


async def install(caller: Caller, p: m.InstallStickerSet) -> Installed:
    return await _install(caller, p.name, True)


async def uninstall(caller: Caller, p: m.UninstallStickerSet) -> Installed:
    return await _install(caller, p.name, False)


async def installed(caller: Caller, p: m.ListInstalled) -> Installed:
    return await caller.services.store.installed_sticker_sets(caller.user_id)


async def by_emoji(caller: Caller, p: m.FindStickers) -> list[FoundSticker]:
    return await caller.services.store.find_stickers(caller.user_id, rules.emoji(p.emoji),
                                                     p.limit)


async def send(caller: Caller, p: m.SendSticker) -> SentMessage:
    """A sticker of a set the caller may see (published, or their own) as a message."""
    s = caller.services
    name = rules.set_name(p.name)
    # a copy of another region's set is used as it is: a send does not wait on its region
    whole = await seen_set(s, caller.user_id, name, refresh=False)
    rules.check_position(rules.SetRow(0, whole.info.author_id, whole.info.published,
                                      len(whole.stickers)), p.index)
    chosen = whole.stickers[p.index - 1]
    sticker = MessageSticker(set=name, index=p.index, emoji=chosen.emoji[0],
                             file_id=chosen.file_id)
    if (home := await elsewhere(caller, p.chat_id)) is not None:
        # its image lent to the group's region while the call lasts
        _, size = await s.store.files_to_send(None, sticker)
        return await call_group(caller, home, "messages.send", GroupSend(
            chat_id=p.chat_id, random_id=p.random_id, reply_to=p.reply_to, sticker=sticker,
            sticker_size=size), SentMessage)
    fanout = reserve(caller, p.chat_id)
    message, pts, pushes = await s.store.send_message(
        caller.user_id, p.chat_id, p.random_id, "", s.clock(), reply_to=p.reply_to,
        sticker=sticker)
    fanout.deliver(pushes, exclude_sink=caller.device.sink_id,
                   chat_size=(len(pushes[0].targets) or 1) if pushes else None)
    if s.regions is not None:
        s.regions.kick()  # to someone homed elsewhere: waiting in the outbox
    return SentMessage(message=message, pts=pts)


HANDLERS = {
    "stickers.create_set": create_set,
    "stickers.remove": remove,
    "stickers.move": move,
    "stickers.publish": publish,
    "stickers.search": search,
    "stickers.get_set": get_set,
    "stickers.install": install,
    "stickers.uninstall": uninstall,
    "stickers.installed": installed,
    "stickers.by_emoji": by_emoji,
    "messages.send_sticker": send,
}
