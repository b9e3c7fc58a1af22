"""How the CLI shows things: one line per item for people, JSON lines for scripts."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from pigeon.protocol.types import Message, User


def when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def who(user: User | None, user_id: int) -> str:
    if user is None:
        return f"user {user_id}"
    return f"{user.name} (@{user.username})" if user.username else user.name


def message_json(msg: Message, sender: User | None, **extra: Any) -> str:
    body = {"chat": msg.chat_id, "id": msg.id, "sender": msg.sender_id,
            "sender_name": sender.name if sender else None,
            "sender_username": sender.username if sender else None,
            "text": msg.text, "date": msg.date}
    if msg.reply_to:
        body["reply_to"] = msg.reply_to
    body.update(extra)
    return json.dumps(body, ensure_ascii=False)


def message_line(msg: Message, sender: User | None, prefix: str = "") -> str:
    reply = f" (reply to #{msg.reply_to})" if msg.reply_to else ""
    fwd = " [forwarded]" if msg.fwd_from else ""
    edited = " [edited]" if msg.edit_date else ""
    return (f"{prefix}[chat:{msg.chat_id} #{msg.id}] {when(msg.date)} {who(sender, msg.sender_id)}"
            f"{reply}{fwd}{edited}: {msg.text}")


def echo(line: str) -> None:
    click.echo(line)
