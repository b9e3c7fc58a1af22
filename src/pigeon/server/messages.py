"""Sending, editing, deleting, forwarding and reading messages; history; sync."""

from __future__ import annotations

from pigeon.domain.encryption import check_forward, check_text
from pigeon.domain.media import caption
from pigeon.domain.messages import check_service_rules, forward_origin
from pigeon.domain.text import validate_text
from pigeon.protocol import methods as m
from pigeon.protocol.region_groups import GroupSend
from pigeon.protocol.sizes import PAGE_BYTES
from pigeon.protocol.types import Affected, Message, ReadResult, SentMessage, State
from pigeon.protocol.updates import Difference
from pigeon.store import Push

from .fanout import afterwards, reserve
from .media_files import media_of
from .region_groups import call_group, elsewhere, not_across
from .services import Caller


async def send(caller: Caller, p: m.SendMessage) -> SentMessage:
    s = caller.services
    if (home := await elsewhere(caller, p.chat_id)) is not None:
        if p.media is None:
            return await call_group(caller, home, "messages.send", GroupSend(
                chat_id=p.chat_id, random_id=p.random_id,
                text=check_text(p.text, p.ciphertext), reply_to=p.reply_to,
                ciphertext=p.ciphertext), SentMessage)
        # its rows go with the call, its bytes are lent to the group's region meanwhile
        # (a file the sender may read, as below; a ciphertext with it is refused there)
        files, _ = await s.store.files_to_send(
            media_of(await s.store.readable_file(caller.user_id, p.media)), None)
        return await call_group(caller, home, "messages.send", GroupSend(
            chat_id=p.chat_id, random_id=p.random_id, text=caption(p.text),
            reply_to=p.reply_to, files=files), SentMessage)
    media = None
    if p.media is not None:
        # Only a file the sender may read: their own upload, or one sent to a chat of theirs.
        # (A file is plaintext on the server: the store refuses it in an end-to-end
        # encrypted group, and a ciphertext anywhere else; domain/encryption.)
        media = media_of(await s.store.readable_file(caller.user_id, p.media))
        text = caption(p.text)
    else:
        # Whether the chat takes text or ciphertext is checked in the store's transaction,
        # where the chat is known: an end-to-end encrypted group takes ciphertext only.
        text = check_text(p.text, p.ciphertext)
    fanout = reserve(caller, p.chat_id)
    message, pts, pushes = await s.store.send_message(
        caller.user_id, p.chat_id, p.random_id, text, s.clock(), reply_to=p.reply_to,
        media=media, ciphertext=p.ciphertext)
    # The calling connection learns its pts from this answer, so it is not pushed the same
    # update; other processes on its session (a follower beside `pigeon send`) are.
    fanout.deliver(pushes, exclude_sink=caller.device.sink_id, chat_size=_members_of(pushes))
    _relay(caller)
    return SentMessage(message=message, pts=pts)


async def forward(caller: Caller, p: m.ForwardMessage) -> SentMessage:
    s = caller.services
    home = await elsewhere(caller, p.to_chat_id)
    original = await s.store.get_message(caller.user_id, p.from_chat_id, p.message_id)
    check_forward(original.ciphertext is not None, False)
    origin = forward_origin(original)
    if home is not None:
        # Into a group of another region: its header as data (as a private forward crosses),
        # the service account's rule checked here, where its chat is.
        if original.media is not None:
            raise not_across("a forwarded file")
        check_service_rules(to_service_chat=False,
                            forwards_from_service_chat=origin.sender_id
                            == await s.store.service_user_id())
        return await call_group(caller, home, "messages.send", GroupSend(
            chat_id=p.to_chat_id, random_id=p.random_id, text=original.text,
            fwd_from=origin), SentMessage)
    fanout = reserve(caller, p.to_chat_id)
    message, pts, pushes = await s.store.send_message(
        caller.user_id, p.to_chat_id, p.random_id, original.text, s.clock(), fwd_from=origin,
        media=original.media)
    fanout.deliver(pushes, exclude_sink=caller.device.sink_id, chat_size=_members_of(pushes))
    _relay(caller)
    return SentMessage(message=message, pts=pts)


async def edit(caller: Caller, p: m.EditMessageText) -> Message:
    s = caller.services
    text = validate_text(p.text)
    if (home := await elsewhere(caller, p.chat_id)) is not None:
        return await call_group(caller, home, "messages.edit", p, Message)
    fanout = reserve(caller, p.chat_id)
    message, pushes = await s.store.edit_message(caller.user_id, p.chat_id, p.message_id,
                                                 text, s.clock())
    fanout.deliver(pushes)
    _relay(caller)
    return message


async def delete(caller: Caller, p: m.DeleteMessages) -> Affected:
    s = caller.services
    if p.for_everyone and (home := await elsewhere(caller, p.chat_id)) is not None:
        return await call_group(caller, home, "messages.delete", p, Affected)
    # Deleting for oneself updates only oneself.
    fanout = reserve(caller, p.chat_id, None if p.for_everyone else 1)
    pts, count, pushes = await s.store.delete_messages(caller.user_id, p.chat_id,
                                                       p.message_ids, p.for_everyone)
    fanout.deliver(pushes)
    _relay(caller)
    return Affected(pts=pts, count=count)


def _relay(caller: Caller) -> None:
    """What was just done in a private chat with someone homed elsewhere waits in the outbox:
    relay it now, not at the relay's next poll."""
    if caller.services.regions is not None:
        caller.services.regions.kick()


def _members_of(pushes: list[Push]) -> int | None:
    """A send's first push (its new_message) goes to every member: the chat's size (a large
    chat's is one item on its stream: its cost is one)."""
    return (len(pushes[0].targets) or 1) if pushes else None


# Pages are cut by bytes as well as by count, so that an answer always fits in one frame
# (protocol/sizes.py): a page of big messages holds fewer of them, and the reader pages on.
async def history(caller: Caller, p: m.History) -> list[Message]:
    return await caller.services.store.history(caller.user_id, p.chat_id, p.before_id, p.limit,
                                               max_bytes=PAGE_BYTES)


async def read(caller: Caller, p: m.ReadHistory) -> ReadResult:
    s = caller.services
    pts, unread, pushes = await s.store.read_history(caller.user_id, p.chat_id, p.max_id)
    afterwards(caller).deliver(pushes)
    _relay(caller)
    return ReadResult(pts=pts, unread_count=unread)


async def get_state(caller: Caller, p: m.GetState) -> State:
    return await caller.services.store.get_state(caller.user_id)


async def get_difference(caller: Caller, p: m.GetDifference) -> Difference:
    return await caller.services.store.get_difference(caller.user_id, p.pts, p.limit,
                                                      max_bytes=PAGE_BYTES)


HANDLERS = {
    "messages.send": send,
    "messages.forward": forward,
    "messages.edit": edit,
    "messages.delete": delete,
    "messages.history": history,
    "messages.read": read,
    "updates.get_state": get_state,
    "updates.get_difference": get_difference,
}
