"""Private chats and groups: creating them, membership and roles, the chats list."""

from __future__ import annotations

from pigeon.protocol import methods as m
from pigeon.protocol.errors import InvalidArgument
from pigeon.protocol.types import Affected, Chat, Dialog, Member, Ok
from pigeon.protocol.updates import Typing

from .service_account import refuse_service_account
from .services import Caller
from .users import public_user


def validate_title(title: str) -> str:
    title = " ".join(title.split())
    if not title:
        raise InvalidArgument("a group needs a title", code="TITLE_INVALID")
    return title


async def open_private(caller: Caller, p: m.OpenPrivate) -> Chat:
    return await caller.services.store.open_private(caller.user_id, p.user_id,
                                                    caller.services.clock())


async def create_group(caller: Caller, p: m.CreateGroup) -> Chat:
    s = caller.services
    await refuse_service_account(s, p.member_ids)
    chat, pushes = await s.store.create_group(caller.user_id, validate_title(p.title),
                                              p.member_ids, s.clock(),
                                              s.settings.max_group_members)
    s.bus.deliver(pushes)
    return chat


async def add_members(caller: Caller, p: m.AddMembers) -> Chat:
    s = caller.services
    await refuse_service_account(s, p.user_ids)
    chat, pushes = await s.store.add_members(caller.user_id, p.chat_id, p.user_ids, s.clock(),
                                             s.settings.max_group_members)
    s.bus.deliver(pushes)
    return chat


async def remove_member(caller: Caller, p: m.RemoveMember) -> Affected:
    s = caller.services
    pts, pushes = await s.store.remove_member(caller.user_id, p.chat_id, p.user_id, s.clock())
    s.bus.deliver(pushes)
    return Affected(pts=pts, count=1)


async def leave(caller: Caller, p: m.LeaveChat) -> Affected:
    return await remove_member(caller, m.RemoveMember(chat_id=p.chat_id, user_id=caller.user_id))


async def set_role(caller: Caller, p: m.SetRole) -> Affected:
    s = caller.services
    pts, pushes = await s.store.set_role(caller.user_id, p.chat_id, p.user_id, p.role, s.clock())
    s.bus.deliver(pushes)
    return Affected(pts=pts, count=1)


async def set_title(caller: Caller, p: m.SetTitle) -> Chat:
    s = caller.services
    chat, pushes = await s.store.set_title(caller.user_id, p.chat_id, validate_title(p.title),
                                           s.clock())
    s.bus.deliver(pushes)
    return chat


async def list_chats(caller: Caller, p: m.ListChats) -> list[Dialog]:
    return await caller.services.store.list_dialogs(caller.user_id)


async def get_chat(caller: Caller, p: m.GetChat) -> Chat:
    return await caller.services.store.get_chat(caller.user_id, p.chat_id)


async def list_members(caller: Caller, p: m.ListMembers) -> list[Member]:
    me = caller.user_id
    rows = await caller.services.store.list_members(me, p.chat_id, p.offset, p.limit)
    return [Member(user=public_user(r.user, me), role=r.role) for r in rows]


async def typing(caller: Caller, p: m.SetTyping) -> Ok:
    # Typing notices are pushed to whoever is online and never stored; in a huge group only
    # the first members get them, which is what such a group wants anyway.
    others = await caller.services.store.member_ids(caller.user_id, p.chat_id, limit=1000)
    caller.services.bus.deliver_ephemeral(
        others, Typing(pts=0, chat_id=p.chat_id, user_id=caller.user_id))
    return Ok()


HANDLERS = {
    "chats.open_private": open_private,
    "chats.create_group": create_group,
    "chats.add_members": add_members,
    "chats.remove_member": remove_member,
    "chats.leave": leave,
    "chats.set_role": set_role,
    "chats.set_title": set_title,
    "chats.list": list_chats,
    "chats.get": get_chat,
    "chats.members": list_members,
    "messages.typing": typing,
}
