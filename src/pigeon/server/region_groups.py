"""Calls in a group homed in another region (issue 12; docs/architecture.md, "Groups across
regions"). This region keeps only a replica of such a group, written by what the group's
region ships; whatever a member homed here does to the group (send, edit, delete for
everyone, add, remove, leave, roles, title) is forwarded to the group's region over
request/reply (``<prefix>.region.<its name>.group``), which runs its rules, commits, ships
the outcome to every region with members, and answers; the caller is answered only then.
No answer in time: REGION_UNAVAILABLE (the call may have been done there: a send's retry,
with the same random_id, is deduplicated there)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from pigeon.domain.membership import is_group
from pigeon.domain.regions import region_of_id
from pigeon.domain.encryption import check_text
from pigeon.domain.media import caption
from pigeon.domain.text import validate_text, validate_title
from pigeon.protocol import methods as m
from pigeon.protocol.errors import (
    InvalidArgument,
    NotFound,
    PigeonError,
    Unavailable,
    error_from_wire,
)
from pigeon.protocol.region_groups import GroupAnswer, GroupCall, GroupMethod, GroupSend
from pigeon.protocol.regions import ID, encode, media_in
from pigeon.protocol.types import Affected, SentMessage
from pigeon.store import Push

from .region_asks import read_ask
from .fanout import recipients
from .region_files import blob_subject, fetch_files, lend_blobs
from .streams import follow_changes, publish

if TYPE_CHECKING:
    from .services import Caller, Services

log = logging.getLogger("pigeon.regions")

R = TypeVar("R")


def not_across(what: str) -> InvalidArgument:
    return InvalidArgument(f"{what} does not reach a group homed in another region yet",
                           code="NOT_SUPPORTED_ACROSS_REGIONS")


#: chats whose home a node remembers (a replica's region, or "" for a chat of this region):
#: a chat never moves; beyond, the oldest remembered is forgotten (read again if used)
MAX_KNOWN_HOMES = 100_000


async def elsewhere(caller: Caller, chat_id: int) -> str | None:
    """The region a chat lives in, if this region keeps only a replica of it; None for a chat
    of this region, or none here. Decided by the chat's row (its ``home_region``), not by its
    id: a chat made before ids were ranged may have an id of any region's range. Read once
    per chat and node; callers of the same chat meanwhile wait for that one read, so that a
    device's pipelined calls leave here in the order they came."""
    link = caller.services.regions
    if link is None:
        return None
    home = link.group_homes.get(chat_id)
    if home is None:
        reading = link.home_reads.get(chat_id)
        if reading is None:
            reading = asyncio.ensure_future(caller.services.store.group_home(chat_id))
            link.home_reads[chat_id] = reading
            reading.add_done_callback(lambda _: link.home_reads.pop(chat_id, None))
        found = await asyncio.shield(reading)
        if found is None:
            return None  # no such chat here yet (a replica may come): not remembered
        if len(link.group_homes) >= MAX_KNOWN_HOMES:
            del link.group_homes[next(iter(link.group_homes))]
        link.group_homes[chat_id] = home = found
    return home or None


async def call_group(caller: Caller, region: str, method: GroupMethod, params: msgspec.Struct,
                     result: type[R], named: list[int] | None = None) -> R:
    """``method`` done by the group's region for the caller; its typed error raised here.
    A device's calls in one chat go one after another (each after the answer to the one
    before): the group's region may run them on different nodes, which would commit calls
    sent together in any order. A send with files or a sticker lends their blobs to the
    group's region while the call lasts (region_files.lend_blobs)."""
    s = caller.services
    link = s.regions
    assert link is not None
    key = (caller.device.sink_id, _ChatOf.of(params))
    before = link.forwarding.get(key)
    mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    link.forwarding[key] = mine
    try:
        if before is not None:
            await asyncio.wait([before])  # its outcome is its own caller's
        people = await s.store.local_people(named) if named else []
        async with contextlib.AsyncExitStack() as lent:
            if isinstance(params, GroupSend) and params.blobs():
                subject = await lent.enter_async_context(
                    lend_blobs(s, link.nc, params.blobs()))
                params = msgspec.structs.replace(params, blobs_from=subject)
            carried = sum(size for _, size in params.blobs()) if isinstance(
                params, GroupSend) else 0
            answer = await link.group_call(region, GroupCall(
                origin=link.name, actor_id=caller.user_id, method=method,
                params=encode(params), people=people), carried)
    finally:
        mine.set_result(None)
        if link.forwarding.get(key) is mine:
            del link.forwarding[key]
    if answer.code is not None or answer.result is None:
        raise error_from_wire(answer.code or "INTERNAL", answer.message, answer.retry_after)
    try:
        return msgspec.msgpack.decode(answer.result, type=result)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise Unavailable(f"region {region} answered nonsense", code="REGION_UNAVAILABLE",
                          retry_after=5) from None


# -- in the group's region ---------------------------------------------------------------------
Done = tuple[msgspec.Struct, list[Push]]
Runner = Callable[["Services", int, bytes], Awaitable[Done]]


async def _send(s: Services, actor: int, raw: bytes) -> Done:
    p = msgspec.msgpack.decode(raw, type=GroupSend)
    if p.blobs():
        return await _send_carried(s, actor, p)
    # text or ciphertext, as the chat wants: checked in the store's transaction (domain)
    message, _, pushes = await s.store.send_message(actor, p.chat_id, p.random_id,
                                                    check_text(p.text, p.ciphertext),
                                                    s.clock(), reply_to=p.reply_to,
                                                    fwd_from=p.fwd_from,
                                                    ciphertext=p.ciphertext)
    # pts 0: the sender's own devices hear of it from their region's replica, with their pts
    return SentMessage(message=message, pts=0), pushes


async def _send_carried(s: Services, actor: int, p: GroupSend) -> Done:
    """A file or a sticker from a member homed elsewhere: its bytes fetched from their region
    (on the subject it lent them on), checked, kept, then sent as any other message; a blob
    that cannot be had is the sender's typed error (FILE_NOT_FOUND, INVALID_ARGUMENT)."""
    link, media = s.regions, s.media
    assert link is not None
    origin = region_of_id(link.table, actor)
    if media is None:
        raise NotFound("this region keeps no files", code="FILE_NOT_FOUND")
    if not p.blobs_from.startswith(blob_subject(s.settings.bus_prefix, origin) + "."):
        raise InvalidArgument("no subject of the sender's region to fetch the file from")
    if p.files and (media_in(p.files) is None or p.sticker is not None):
        raise InvalidArgument("a message carries one file, or a sticker")
    try:
        await fetch_files(s, link.nc, origin, p.blobs(), subject=p.blobs_from)
    except Unavailable:
        raise
    except PigeonError as exc:
        # the sender's region lent nothing for it, or not these bytes: the sender's doing
        raise NotFound(f"the file could not be had from region {origin}: {exc.message}",
                       code="FILE_NOT_FOUND") from None
    # the collector decides under this lock whether a blob is used: not between the check
    # that the fetched blob is here and the file rows that use it
    async with media.blob_lock:
        for digest, _ in p.blobs():
            if await media.blobs.path(digest) is None:
                raise Unavailable("a fetched file went before its message was sent",
                                  code="STORAGE_FAILED")
        message, _, pushes = await s.store.send_carried(
            actor, p.chat_id, p.random_id, caption(p.text) if p.files else "", s.clock(),
            p.reply_to, p.files, p.sticker)
    return SentMessage(message=message, pts=0), pushes


async def _edit(s: Services, actor: int, raw: bytes) -> Done:
    p = msgspec.msgpack.decode(raw, type=m.EditMessageText)
    message, pushes = await s.store.edit_message(actor, p.chat_id, p.message_id,
                                                 validate_text(p.text), s.clock())
    return message, pushes


async def _delete(s: Services, actor: int, raw: bytes) -> Done:
    p = msgspec.msgpack.decode(raw, type=m.DeleteMessages)
    if not p.for_everyone:
        raise InvalidArgument("a delete for oneself is done in one's own region")
    _, count, pushes = await s.store.delete_messages(actor, p.chat_id, p.message_ids, True)
    return Affected(pts=0, count=count), pushes


async def _add(s: Services, actor: int, raw: bytes) -> Done:
    from .chats import group_policy  # noqa: PLC0415  (it calls this module)

    p = msgspec.msgpack.decode(raw, type=m.AddMembers)
    return await s.store.add_members(actor, p.chat_id, p.user_ids, s.clock(),
                                     s.settings.max_group_members, group_policy(s.settings))


async def _remove(s: Services, actor: int, raw: bytes) -> Done:
    p = msgspec.msgpack.decode(raw, type=m.RemoveMember)
    _, pushes = await s.store.remove_member(actor, p.chat_id, p.user_id, s.clock())
    return Affected(pts=0, count=1), pushes


async def _set_role(s: Services, actor: int, raw: bytes) -> Done:
    p = msgspec.msgpack.decode(raw, type=m.SetRole)
    _, pushes = await s.store.set_role(actor, p.chat_id, p.user_id, p.role, s.clock())
    return Affected(pts=0, count=1), pushes


async def _set_title(s: Services, actor: int, raw: bytes) -> Done:
    p = msgspec.msgpack.decode(raw, type=m.SetTitle)
    return await s.store.set_title(actor, p.chat_id, validate_title(p.title), s.clock())


RUNNERS: dict[str, Runner] = {  # by GroupMethod
    "messages.send": _send, "messages.edit": _edit, "messages.delete": _delete,
    "chats.add_members": _add, "chats.remove_member": _remove, "chats.set_role": _set_role,
    "chats.set_title": _set_title,
}

#: forwarded calls a node answers at once; beyond, OVERLOADED (the caller may retry)
MAX_GROUP_CALLS = 1024


def take_group_call(services: Services, msg: Any, running: set[asyncio.Task[None]]) -> None:
    """Answer a forwarded call in its own task, so that calls of many senders are committed
    together (a device's calls in one chat come one at a time: call_group)."""
    if len(running) >= MAX_GROUP_CALLS:
        task = asyncio.create_task(msg.respond(encode(GroupAnswer(
            code="OVERLOADED", message="too many calls from other regions at once"))))
    else:
        task = asyncio.create_task(answer_group_call(services, msg))
    running.add(task)
    task.add_done_callback(running.discard)


async def answer_group_call(services: Services, msg: Any) -> None:
    """A call forwarded by another region. Malformed: logged, no answer (the asker times
    out, as for a lookup); refused: the typed error; done: the result, after the commit."""
    link = services.regions
    assert link is not None
    if (call := read_ask(msg, GroupCall, "group call")) is None:
        link.dropped += 1
        return
    try:
        result = await _run(services, call)
        answer = GroupAnswer(result=encode(result))
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        answer = GroupAnswer(code="INVALID_ARGUMENT", message=f"malformed params: {exc}"[:1000])
    except PigeonError as exc:
        retry = None if exc.retry_after is None else min(max(exc.retry_after, 0.0), 86_400.0)
        answer = GroupAnswer(code=exc.code, message=exc.message[:1000], retry_after=retry)
    except Exception:  # the store failing: answered, not left to time out
        log.exception("regions: group call %s from %s failed", call.method, call.origin)
        answer = GroupAnswer(code="STORAGE_FAILED", message="the group's region failed")
    link.group_call_counts["refused" if answer.code else "answered"] += 1
    await msg.respond(encode(answer))


async def _run(services: Services, call: GroupCall) -> msgspec.Struct:
    link = services.regions
    assert link is not None
    runner = RUNNERS.get(call.method)
    if runner is None:  # a method of a newer region
        raise not_across(f"{call.method}")
    # The asking region vouches for its own people only, and only for groups homed here
    # (the store refuses every write to a replica but one applied from the stream).
    if call.origin == link.name or call.origin not in link.others:
        raise InvalidArgument(f"no region {call.origin} to call from")
    for person_id in (call.actor_id, *(p.id for p in call.people)):
        if region_of_id(link.table, person_id) != call.origin:
            raise InvalidArgument(f"user {person_id} is not homed in {call.origin}")
    chat_id = msgspec.msgpack.decode(call.params, type=_ChatOf).chat_id
    # a group only: a private chat's copies cross as messages, by their own rules
    if not is_group((await services.store.get_chat(call.actor_id, chat_id)).kind):
        raise InvalidArgument(f"chat {chat_id} is not a group", code="NOT_SUPPORTED_ACROSS_REGIONS")
    # its fan-out charged to the actor as a local call's is (leaving is never refused)
    shield = services.shield
    taken = 0.0 if call.method == "chats.remove_member" else shield.reserve_fanout(
        call.actor_id, chat_id)
    # the actor is a member here already (or refused as none); whoever is added is made known
    for person in call.people:
        await services.store.remember_remote(person, call.origin, services.clock())
    result, pushes = await runner(services, call.actor_id, call.params)
    shield.charge_fanout(call.actor_id, taken, recipients(pushes), chat_id)
    follow_changes(services, pushes)
    services.bus.deliver(pushes)
    publish(services, pushes)
    link.kick()
    return result


class _ChatOf(msgspec.Struct, forbid_unknown_fields=False):
    """The chat every forwarded method's params name."""

    chat_id: ID

    @staticmethod
    def of(params: msgspec.Struct) -> int:
        chat_id: int = getattr(params, "chat_id")  # noqa: B009  (every method's params name one)
        return chat_id
