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
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from pigeon.domain.regions import region_of_id
from pigeon.domain.encryption import check_text
from pigeon.domain.text import validate_text, validate_title
from pigeon.protocol import methods as m
from pigeon.protocol.errors import InvalidArgument, PigeonError, Unavailable, error_from_wire
from pigeon.protocol.region_groups import GroupAnswer, GroupCall, GroupMethod, GroupSend
from pigeon.protocol.regions import ID, encode
from pigeon.protocol.types import Affected, SentMessage
from pigeon.store import Push

from .streams import follow_changes, publish

if TYPE_CHECKING:
    from .services import Caller, Services

log = logging.getLogger("pigeon.regions")

R = TypeVar("R")


def not_across(what: str) -> InvalidArgument:
    return InvalidArgument(f"{what} does not reach a group homed in another region yet",
                           code="NOT_SUPPORTED_ACROSS_REGIONS")


async def elsewhere(caller: Caller, chat_id: int) -> str | None:
    """The region a chat lives in, if this region keeps only a replica of it; None for a chat
    of this region (known without a read when its id is in this region's range)."""
    link = caller.services.regions
    if link is None:
        return None
    try:
        if region_of_id(link.table, chat_id) == link.name:
            return None
    except InvalidArgument:
        return None
    home = link.group_homes.get(chat_id)
    if home is None:
        home = await caller.services.store.group_home(chat_id)
        if home is not None:  # a group never moves: its replica's home is kept
            link.group_homes[chat_id] = home
    return home


async def call_group(caller: Caller, region: str, method: GroupMethod, params: msgspec.Struct,
                     result: type[R], named: list[int] | None = None) -> R:
    """``method`` done by the group's region for the caller; its typed error raised here."""
    s = caller.services
    link = s.regions
    assert link is not None
    # no read before the request for a send: a device's pipelined sends go out in order
    people = await s.store.local_people(named) if named else []
    answer = await link.group_call(region, GroupCall(
        origin=link.name, actor_id=caller.user_id, method=method, params=encode(params),
        people=people))
    if answer.code is not None or answer.result is None:
        raise error_from_wire(answer.code or "INTERNAL", answer.message)
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
    # text or ciphertext, as the chat wants: checked in the store's transaction (domain)
    message, _, pushes = await s.store.send_message(actor, p.chat_id, p.random_id,
                                                    check_text(p.text, p.ciphertext),
                                                    s.clock(), reply_to=p.reply_to,
                                                    fwd_from=p.fwd_from,
                                                    ciphertext=p.ciphertext)
    # pts 0: the sender's own devices hear of it from their region's replica, with their pts
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
    """Answer a forwarded call in its own task, started in the order the calls came: each
    reaches the store's queue before its first wait, so a device's pipelined sends keep
    their order there, and calls of many senders are committed together."""
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
    try:
        call = msgspec.msgpack.decode(msg.data, type=GroupCall)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        log.warning("regions: malformed group call dropped: %s", exc)
        link.dropped += 1
        return
    try:
        result = await _run(services, call)
        answer = GroupAnswer(result=encode(result))
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        answer = GroupAnswer(code="INVALID_ARGUMENT", message=f"malformed params: {exc}"[:1000])
    except PigeonError as exc:
        answer = GroupAnswer(code=exc.code, message=exc.message[:1000])
    link.group_call_counts["refused" if answer.code else "answered"] += 1
    await msg.respond(encode(answer))


async def _run(services: Services, call: GroupCall) -> msgspec.Struct:
    link = services.regions
    assert link is not None
    # The asking region vouches for its own people only, and only for groups homed here.
    if call.origin == link.name or call.origin not in link.others:
        raise InvalidArgument(f"no region {call.origin} to call from")
    for person_id in (call.actor_id, *(p.id for p in call.people)):
        if region_of_id(link.table, person_id) != call.origin:
            raise InvalidArgument(f"user {person_id} is not homed in {call.origin}")
    chat_id = msgspec.msgpack.decode(call.params, type=_ChatOf).chat_id
    # a chat of this region's range is no replica; another (one made before chat ids were
    # ranged, or a replica) is read: no wait before the store's queue for the usual case
    if (region_of_id(link.table, chat_id) != link.name
            and await services.store.group_home(chat_id) is not None):
        raise InvalidArgument(f"chat {chat_id} is not homed in {link.name}")
    # the actor is a member here already (or refused as none); whoever is added is made known
    for person in call.people:
        await services.store.remember_remote(person, call.origin, services.clock())
    result, pushes = await RUNNERS[call.method](services, call.actor_id, call.params)
    follow_changes(services, pushes)
    services.bus.deliver(pushes)
    publish(services, pushes)
    link.kick()
    return result


class _ChatOf(msgspec.Struct, forbid_unknown_fields=False):
    """The chat every forwarded method's params name."""

    chat_id: ID
