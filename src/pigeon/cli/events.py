"""What ``pigeon receive`` prints for each kind of update besides a new message (issue 11):
edits, deletions, read receipts, typing and membership changes, each a line of its own, or a
JSON object with a ``"type"`` field. A new message prints as it always has (its JSON has no
``type``: scripts read today's fields).

Pure: each function takes an update and what the caller looked up (names, quoted text) and
returns the line. Every field another person wrote goes through :func:`.output.visible`.
"""

from __future__ import annotations

from typing import Any

from pigeon.protocol.types import Chat, Message, User
from pigeon.protocol.updates import ChatUpdate, DeleteMessages, ReadOutbox, Typing

from .chat_settings import muted, pinned
from .output import json_line, message_json, message_line, plural, visible, who

QUOTE_CHARS = 40  # of the message a reply answers, shown beside it


def quoted(text: str) -> str:
    """A reply's original, shortened to one line: ``'hello bob'`` or ``'a long one…'``."""
    flat = " ".join(text.split())
    short = flat if len(flat) <= QUOTE_CHARS else flat[:QUOTE_CHARS - 1] + "…"
    return f"'{visible(short)}'"


def message_event(msg: Message, sender: User | None, *, edited: bool, quote: str | None,
                  as_json: bool) -> str:
    if as_json:
        # "secret": false tells a plain message from a secret one (cli/secret.py) in one feed.
        extra: dict[str, Any] = {"type": "edit", "edited": True} if edited else {}
        return message_json(msg, sender, **extra, secret=False)
    return message_line(msg, sender, quote=quote)


def deletion(update: DeleteMessages, as_json: bool) -> str:
    if as_json:
        return json_line({"type": "delete", "chat": update.chat_id, "ids": update.message_ids,
                          "for_everyone": update.for_everyone})
    ids = ", ".join(f"#{i}" for i in update.message_ids)
    # Not for everyone: the user deleted them for themself, on one of their devices.
    scope = "for everyone" if update.for_everyone else "for you"
    return f"[chat:{update.chat_id}] deleted {ids} {scope}"


def read_receipt(update: ReadOutbox, as_json: bool) -> str:
    if as_json:
        return json_line({"type": "read", "chat": update.chat_id, "up_to": update.max_id})
    return f"[chat:{update.chat_id}] read up to #{update.max_id}"


def typing(update: Typing, user: User | None, as_json: bool) -> str:
    if as_json:
        return json_line({"type": "typing", "chat": update.chat_id, "sender": update.user_id,
                          "sender_name": user.name if user else None,
                          "sender_username": user.username if user else None})
    return f"[chat:{update.chat_id}] {who(user, update.user_id)} is typing"


def membership(update: ChatUpdate, as_json: bool) -> str:
    chat = update.chat
    if as_json:
        body: dict[str, Any] = {"type": "chat", "chat": chat.id, "kind": chat.kind,
                                "title": chat.title, "members": chat.member_count,
                                "role": chat.role}
        if chat.invited_by:
            body["invited_by"] = chat.invited_by
        if chat.role is not None:
            body["pinned"] = chat.pinned_message_id or None
        if chat.muted_until is not None:  # None: this update does not say (see Chat)
            body["muted_until"] = chat.muted_until or None
        return json_line(body)
    settings = ""
    if chat.role is not None:
        settings = pinned(chat) + (muted(chat) or (" [not muted]" if chat.muted_until == 0 else ""))
    return f"[chat:{chat.id}] {_standing(chat)}{settings}"


def _standing(chat: Chat) -> str:
    if chat.kind == "private":
        return "private chat" if chat.role is not None else "no longer yours"
    title = f"'{visible(chat.title)}'"
    if chat.invited_by:
        return (f"you are invited to {title} by user {chat.invited_by} (pigeon group accept "
                f"chat:{chat.id})")
    if chat.role is None:
        return f"you are no longer a member of {title}"
    return f"{title}: {plural(chat.member_count, 'member')}, you: {chat.role}"
