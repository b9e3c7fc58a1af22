"""Blocks, abuse reports, contacts and message requests (issue 11). The rules are in
``pigeon.domain.blocks`` and ``pigeon.domain.requests``. Only accepting a request pushes
anything (its messages, to the accepter's devices): a block and a declined request are silent
by design, and contacts and requests are read from the server by every device of the account,
so all of them see the same."""

from __future__ import annotations

from pigeon.domain.blocks import validate_reason
from pigeon.domain.text import validate_name
from pigeon.protocol import methods as m
from pigeon.protocol.types import Chat, Contact, MessageRequest, Ok, User
from pigeon.store.base import ContactRecord

from .fanout import afterwards
from .services import Caller
from .users import public_user


async def block(caller: Caller, p: m.Block) -> Ok:
    s = caller.services
    await s.store.block(caller.user_id, p.user_id, s.clock())
    return Ok()


async def unblock(caller: Caller, p: m.Unblock) -> Ok:
    await caller.services.store.unblock(caller.user_id, p.user_id)
    return Ok()


async def blocked(caller: Caller, p: m.ListBlocked) -> list[User]:
    me = caller.user_id
    return [public_user(u, me) for u in await caller.services.store.blocked(me, p.offset,
                                                                            p.limit)]


async def report(caller: Caller, p: m.ReportMessage) -> Ok:
    s = caller.services
    await s.store.report(caller.user_id, p.chat_id, p.message_id, validate_reason(p.reason),
                         s.clock())
    s.metrics.reports.inc()
    return Ok()


def _contact(record: ContactRecord, me: int) -> Contact:
    return Contact(user=public_user(record.user, me), name=record.name, date=record.date)


async def add_contact(caller: Caller, p: m.AddContact) -> Contact:
    s = caller.services
    name = validate_name(p.name) if p.name.strip() else ""
    record = await s.store.add_contact(caller.user_id, p.user_id, name, s.clock())
    return _contact(record, caller.user_id)


async def remove_contact(caller: Caller, p: m.RemoveContact) -> Ok:
    await caller.services.store.remove_contact(caller.user_id, p.user_id)
    return Ok()


async def contacts(caller: Caller, p: m.ListContacts) -> list[Contact]:
    me = caller.user_id
    return [_contact(r, me) for r in await caller.services.store.contacts(me, p.offset, p.limit)]


async def requests(caller: Caller, p: m.ListRequests) -> list[MessageRequest]:
    me = caller.user_id
    rows = await caller.services.store.message_requests(me, p.offset, p.limit)
    return [MessageRequest(chat=r.chat, peer=public_user(r.peer, me), last_message=r.last_message,
                           date=r.date) for r in rows]


async def accept_request(caller: Caller, p: m.AcceptRequest) -> Chat:
    chat, pushes = await caller.services.store.accept_request(caller.user_id, p.chat_id)
    afterwards(caller).deliver(pushes)  # to the accepter's own devices only
    return chat


async def decline_request(caller: Caller, p: m.DeclineRequest) -> Ok:
    await caller.services.store.decline_request(caller.user_id, p.chat_id)
    return Ok()


HANDLERS = {
    "users.block": block,
    "users.unblock": unblock,
    "users.blocked": blocked,
    "messages.report": report,
    "contacts.add": add_contact,
    "contacts.remove": remove_contact,
    "contacts.list": contacts,
    "requests.list": requests,
    "requests.accept": accept_request,
    "requests.decline": decline_request,
}
