"""What a chat looks like to each person: the :class:`Chat` they are shown.

The chat's own row is the same for everyone; the role (and, in a private chat, the peer)
differ per person. Someone who is not a member (removed, left, declined or only invited)
sees the chat with no role.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pigeon.protocol.types import Chat, Role

from .records import ChatRow


def chat_view(chat: ChatRow, role: Role | None, peer_id: int | None = None,
              muted_until: float | None = None) -> Chat:
    """``muted_until``: the viewer's own mute, in views made for them alone (None: unsaid)."""
    return Chat(id=chat.id, kind=chat.kind, title=chat.title,
                member_count=chat.member_count, peer_id=peer_id, role=role,
                last_message_id=chat.last_message_id,
                pinned_message_id=chat.pinned_message_id if role is not None else 0,
                muted_until=muted_until if role is not None else None,
                secret=bool(chat.secret))


def private_peer(viewer_id: int, member_ids: Iterable[int]) -> int:
    """The other side of a private chat; in a chat with oneself, oneself."""
    return next((uid for uid in member_ids if uid != viewer_id), viewer_id)


def member_views(
    chat: ChatRow, members: Iterable[tuple[int, Role]], departed: Sequence[int] = ()
) -> list[tuple[Chat, list[int]]]:
    """The views of a group to announce a change to (a ChatUpdate each): every member sees
    their own role, and those in ``departed`` (just removed, or left) see none. One view per
    role, with who gets it."""
    by_role: dict[Role | None, list[int]] = {}
    for user_id, role in members:
        by_role.setdefault(role, []).append(user_id)
    if departed:
        by_role.setdefault(None, []).extend(departed)
    return [(chat_view(chat, role), user_ids) for role, user_ids in by_role.items()]


def invited_view(chat: ChatRow, inviter_id: int) -> Chat:
    """The group as its invitee sees it: not a member yet, and who asked them."""
    return Chat(id=chat.id, kind=chat.kind, title=chat.title,
                member_count=chat.member_count, last_message_id=chat.last_message_id,
                invited_by=inviter_id, secret=bool(chat.secret))

