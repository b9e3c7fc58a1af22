"""Private chats and groups: creating them, membership and roles, the chats list."""

from __future__ import annotations

from pigeon.domain.paging import dialog_cursor
from pigeon.domain.text import validate_title
from pigeon.protocol import limits
from pigeon.protocol import methods as m
from pigeon.protocol.types import Affected, Chat, Dialog, Invitation, Member, Ok
from pigeon.protocol.updates import Typing
from pigeon.store import GroupPolicy

from .fanout import afterwards, fanout_size, reserve
from .region_groups import call_group, elsewhere
from .service_account import refuse_service_account
from .services import Caller
from .settings import Settings
from .users import public_user


def group_policy(settings: Settings) -> GroupPolicy:
    return GroupPolicy(
        default_who_can_add=settings.default_who_can_add,
        max_groups_joined=settings.max_groups_joined,
        max_groups_created_per_day=settings.max_groups_created_per_day,
        max_pending_invitations=settings.max_pending_invitations,
        max_supergroup_members=settings.max_supergroup_members,
    )


async def open_private(caller: Caller, p: m.OpenPrivate) -> Chat:
    s = caller.services
    return await s.store.open_private(caller.user_id, p.user_id, s.clock(),
                                      s.settings.default_who_can_message)


async def create_group(caller: Caller, p: m.CreateGroup) -> Chat:
    s = caller.services
    await refuse_service_account(s, p.member_ids)
    title = validate_title(p.title)
    fanout = reserve(caller, None, estimate=len(p.member_ids) + 1)
    chat, pushes = await s.store.create_group(caller.user_id, title, p.member_ids, s.clock(),
                                              s.settings.max_group_members,
                                              group_policy(s.settings), large=p.large,
                                              secret=p.secret)
    fanout.deliver(pushes)
    return chat


async def add_members(caller: Caller, p: m.AddMembers) -> Chat:
    s = caller.services
    await refuse_service_account(s, p.user_ids)
    if (home := await elsewhere(caller, p.chat_id)) is not None:
        return await call_group(caller, home, "chats.add_members", p, Chat, p.user_ids)
    fanout = reserve(caller, p.chat_id)
    chat, pushes = await s.store.add_members(caller.user_id, p.chat_id, p.user_ids, s.clock(),
                                             s.settings.max_group_members,
                                             group_policy(s.settings))
    fanout.deliver(pushes)
    return chat


async def invitations(caller: Caller, p: m.ListInvitations) -> list[Invitation]:
    me = caller.user_id
    rows = await caller.services.store.list_invitations(me, caller.services.settings
                                                        .max_pending_invitations)
    return [Invitation(chat=r.chat, inviter=public_user(r.inviter, me), date=r.date)
            for r in rows]


async def accept_invite(caller: Caller, p: m.AcceptInvite) -> Chat:
    s = caller.services
    fanout = reserve(caller, p.chat_id)
    chat, pushes = await s.store.accept_invitation(caller.user_id, p.chat_id, s.clock(),
                                                   s.settings.max_group_members,
                                                   group_policy(s.settings))
    fanout.deliver(pushes)
    return chat


async def decline_invite(caller: Caller, p: m.DeclineInvite) -> Ok:
    pushes = await caller.services.store.decline_invitation(caller.user_id, p.chat_id)
    afterwards(caller).deliver(pushes)
    return Ok()


async def remove_member(caller: Caller, p: m.RemoveMember) -> Affected:
    s = caller.services
    if (home := await elsewhere(caller, p.chat_id)) is not None:
        return await call_group(caller, home, "chats.remove_member", p, Affected)
    pts, pushes = await s.store.remove_member(caller.user_id, p.chat_id, p.user_id, s.clock())
    afterwards(caller, p.chat_id).deliver(pushes)
    return Affected(pts=pts, count=1)


async def leave(caller: Caller, p: m.LeaveChat) -> Affected:
    return await remove_member(caller, m.RemoveMember(chat_id=p.chat_id, user_id=caller.user_id))


async def set_role(caller: Caller, p: m.SetRole) -> Affected:
    s = caller.services
    if (home := await elsewhere(caller, p.chat_id)) is not None:
        return await call_group(caller, home, "chats.set_role", p, Affected)
    pts, pushes = await s.store.set_role(caller.user_id, p.chat_id, p.user_id, p.role, s.clock())
    afterwards(caller, p.chat_id).deliver(pushes)
    return Affected(pts=pts, count=1)


async def set_title(caller: Caller, p: m.SetTitle) -> Chat:
    s = caller.services
    title = validate_title(p.title)
    if (home := await elsewhere(caller, p.chat_id)) is not None:
        return await call_group(caller, home, "chats.set_title", p, Chat)
    fanout = reserve(caller, p.chat_id)
    chat, pushes = await s.store.set_title(caller.user_id, p.chat_id, title, s.clock())
    fanout.deliver(pushes, chat_size=fanout_size(chat))
    return chat


async def list_chats(caller: Caller, p: m.ListChats) -> list[Dialog]:
    before = dialog_cursor(p.offset_date, p.offset_chat_id)
    return await caller.services.store.list_dialogs(caller.user_id, min(p.limit,
                                                    limits.MAX_DIALOG_PAGE), before)


async def get_chat(caller: Caller, p: m.GetChat) -> Chat:
    return await caller.services.store.get_chat(caller.user_id, p.chat_id)


async def list_members(caller: Caller, p: m.ListMembers) -> list[Member]:
    me = caller.user_id
    rows = await caller.services.store.list_members(me, p.chat_id, p.offset, p.limit)
    return [Member(user=public_user(r.user, me), role=r.role) for r in rows]


async def mute(caller: Caller, p: m.MuteChat) -> Chat:
    s = caller.services
    fanout = reserve(caller, p.chat_id, 1)  # the caller's own devices only
    chat, pushes = await s.store.mute_chat(caller.user_id, p.chat_id, p.until, s.clock())
    fanout.deliver(pushes)
    return chat


async def pin(caller: Caller, p: m.PinMessage) -> Chat:
    s = caller.services
    fanout = reserve(caller, p.chat_id)  # every member is told
    chat, pushes = await s.store.pin_message(caller.user_id, p.chat_id, p.message_id,
                                             s.clock())
    fanout.deliver(pushes, chat_size=chat.member_count)
    if s.regions is not None:
        s.regions.kick()  # a pin in a private chat with someone homed elsewhere: the outbox
    return chat


async def typing(caller: Caller, p: m.SetTyping) -> Ok:
    # Typing notices are pushed to whoever is online and never stored; in a huge group only
    # the first members get them, which is what such a group wants anyway.
    s = caller.services
    others = await s.store.member_ids(caller.user_id, p.chat_id, limit=1000)
    s.bus.deliver_ephemeral(others, Typing(pts=0, chat_id=p.chat_id, user_id=caller.user_id))
    if s.regions is not None:  # the other side of a private chat may be homed elsewhere
        await s.regions.typing.send(caller.user_id, p.chat_id, others)
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
    "chats.invitations": invitations,
    "chats.accept_invite": accept_invite,
    "chats.decline_invite": decline_invite,
    "chats.mute": mute,
    "chats.pin": pin,
    "messages.typing": typing,
}
