"""``pigeon group ...`` and ``pigeon sessions ...``."""

from __future__ import annotations

import click

from .context import Ctx, resolve_chat, resolve_user, run, session
from .output import echo, plural, visible, when, who

pass_ctx = click.make_pass_decorator(Ctx)


@click.group()
def group() -> None:
    """Create groups and manage their members."""


@group.command("create")
@click.argument("title")
@click.option("--member", "members", multiple=True, help="@username or user:ID (repeatable).")
@click.option("--large", is_flag=True,
              help="A very large group (up to the server's max_supergroup_members): each "
                   "message is written once, on the group's own stream.")
@click.option("--secret", is_flag=True,
              help="End-to-end encrypted: the server relays messages it cannot read (each "
                   "member's devices hold the keys).")
@pass_ctx
@run
async def group_create(ctx: Ctx, title: str, members: tuple[str, ...], large: bool,
                       secret: bool) -> None:
    """Create a group called TITLE, with you as its owner."""
    async with session(ctx) as client:
        ids = [await resolve_user(client, ref) for ref in members]
        chat = await client.chats.create_group(title, ids, large=large, secret=secret)
    size = plural(chat.member_count, 'member')
    kind = " (end-to-end encrypted)" if chat.secret else ""
    echo(f"created chat:{chat.id} '{visible(chat.title)}'{kind} with {size}"
         f"{_invited(chat.invited)}")


def _invited(user_ids: list[int]) -> str:
    if not user_ids:
        return ""
    invitees = ", ".join(f"user:{uid}" for uid in user_ids)
    return f"; invited {invitees} (they join when they accept: pigeon group accept)"


@group.command("add")
@click.argument("chat")
@click.argument("members", nargs=-1, required=True)
@pass_ctx
@run
async def group_add(ctx: Ctx, chat: str, members: tuple[str, ...]) -> None:
    """Add MEMBERS (@username or user:ID) to CHAT."""
    async with session(ctx) as client:
        chat_id = await resolve_chat(client, chat)
        ids = [await resolve_user(client, ref) for ref in members]
        result = await client.chats.add_members(chat_id, ids)
    echo(f"chat:{result.id} now has {plural(result.member_count, 'member')}"
         f"{_invited(result.invited)}")


@group.command("remove")
@click.argument("chat")
@click.argument("member")
@pass_ctx
@run
async def group_remove(ctx: Ctx, chat: str, member: str) -> None:
    """Remove MEMBER (@username or user:ID) from CHAT."""
    async with session(ctx) as client:
        chat_id = await resolve_chat(client, chat)
        await client.chats.remove_member(chat_id, await resolve_user(client, member))
    echo(f"removed {member} from chat:{chat_id}")


@group.command("leave")
@click.argument("chat")
@pass_ctx
@run
async def group_leave(ctx: Ctx, chat: str) -> None:
    """Leave CHAT."""
    async with session(ctx) as client:
        chat_id = await resolve_chat(client, chat)
        await client.chats.leave(chat_id)
    echo(f"left chat:{chat_id}")


@group.command("rename")
@click.argument("chat")
@click.argument("title")
@pass_ctx
@run
async def group_rename(ctx: Ctx, chat: str, title: str) -> None:
    """Rename CHAT to TITLE (its admins may)."""
    async with session(ctx) as client:
        renamed = await client.chats.set_title(await resolve_chat(client, chat), title)
    echo(f"chat:{renamed.id} is now '{visible(renamed.title)}'")


@group.command("members")
@click.argument("chat")
@pass_ctx
@run
async def group_members(ctx: Ctx, chat: str) -> None:
    """List the members of CHAT with their roles (all of them, a page at a time)."""
    async with session(ctx) as client:
        chat_id = await resolve_chat(client, chat)
        offset = 0
        while page := await client.chats.members(chat_id, offset, MEMBERS_PAGE):
            for member in page:
                echo(f"user:{member.user.id}  {who(member.user, member.user.id)}  {member.role}")
            offset += len(page)


MEMBERS_PAGE = 100


@group.command("promote")
@click.argument("chat")
@click.argument("member")
@pass_ctx
@run
async def group_promote(ctx: Ctx, chat: str, member: str) -> None:
    """Make MEMBER (@username or user:ID) an admin of CHAT (its owner may)."""
    await _set_role(ctx, chat, member, "admin")


@group.command("demote")
@click.argument("chat")
@click.argument("member")
@pass_ctx
@run
async def group_demote(ctx: Ctx, chat: str, member: str) -> None:
    """Make admin MEMBER (@username or user:ID) of CHAT a plain member again (its owner may)."""
    await _set_role(ctx, chat, member, "member")


async def _set_role(ctx: Ctx, chat: str, member: str, role: str) -> None:
    async with session(ctx) as client:
        chat_id = await resolve_chat(client, chat)
        await client.chats.set_role(chat_id, await resolve_user(client, member), role)
    echo(f"{visible(member)} is now {'an admin' if role == 'admin' else 'a member'} of "
         f"chat:{chat_id}")


@group.command("invites")
@pass_ctx
@run
async def group_invites(ctx: Ctx) -> None:
    """List the groups you are invited to: accept or decline each."""
    async with session(ctx) as client:
        invitations = await client.chats.invitations()
    if not invitations:
        echo("no invitations")
    for inv in invitations:
        echo(f"chat:{inv.chat.id} '{visible(inv.chat.title)}' "
             f"({plural(inv.chat.member_count, 'member')}), "
             f"from {who(inv.inviter, inv.inviter.id)} on {when(inv.date)}")


@group.command("accept")
@click.argument("chat")
@pass_ctx
@run
async def group_accept(ctx: Ctx, chat: str) -> None:
    """Accept the invitation to CHAT (chat:ID) and join it."""
    async with session(ctx) as client:
        joined = await client.chats.accept_invite(await resolve_chat(client, chat))
    echo(f"joined chat:{joined.id} '{visible(joined.title)}' "
         f"({plural(joined.member_count, 'member')})")


@group.command("decline")
@click.argument("chat")
@pass_ctx
@run
async def group_decline(ctx: Ctx, chat: str) -> None:
    """Decline the invitation to CHAT (chat:ID)."""
    async with session(ctx) as client:
        chat_id = await resolve_chat(client, chat)
        await client.chats.decline_invite(chat_id)
    echo(f"declined chat:{chat_id}")


@group.command("privacy")
@click.argument("who_can_add", type=click.Choice(["everyone", "contacts", "nobody"]),
                required=False)
@pass_ctx
@run
async def group_privacy(ctx: Ctx, who_can_add: str | None) -> None:
    """Show or set who may add you to groups without asking: everyone, contacts (people who
    wrote to you in a private chat) or nobody. The others can only invite you (contacts
    setting) or not even that (nobody)."""
    async with session(ctx) as client:
        if who_can_add is None:
            me = await client.account.me()
        else:
            me = await client.account.set_who_can_add(who_can_add)  # type: ignore[arg-type]
    echo(f"who can add you to groups: {me.who_can_add}")


@click.group()
def sessions() -> None:
    """Your logged-in devices."""


@sessions.command("list")
@pass_ctx
@run
async def sessions_list(ctx: Ctx) -> None:
    """List sessions: id, device, address, last active."""
    async with session(ctx) as client:
        rows = await client.sessions.list()
    for s in rows:
        mark = "  (this device)" if s.current else ""
        echo(f"{s.id}  {visible(s.device)}  {visible(s.address)}  last active "
             f"{when(s.last_active)}{mark}")


@sessions.command("terminate")
@click.argument("session_id", type=int, required=False)
@click.option("--all-others", is_flag=True, help="Terminate every session but this one.")
@pass_ctx
@run
async def sessions_terminate(ctx: Ctx, session_id: int | None, all_others: bool) -> None:
    """Terminate SESSION_ID (its device is disconnected at once), or --all-others."""
    if (session_id is None) == (not all_others):
        raise click.UsageError("give a SESSION_ID or --all-others")
    async with session(ctx) as client:
        if all_others:
            count = await client.sessions.terminate_others()
            echo(f"terminated {count} other session(s)")
        else:
            assert session_id is not None
            await client.sessions.terminate(session_id)
            echo(f"terminated session {session_id}")
