"""How the CLI shows things: one line per item for people, JSON lines for scripts.

Most of what the CLI prints was written by someone else: message text, names, group titles,
device names, even error messages. Issue 7, finding 16: printed raw, a stranger's
``\\x1b[2K\\rAlice: ...`` erased the line on screen and forged one from Alice, and an OSC
sequence retitled the terminal. So every such field goes through :func:`visible` (one line:
controls, bidi and invisible characters as ``\\x1b``, ``\\r`` or ``<U+202E>``) or
:func:`visible_body` (a message: its lines kept, the ones after the first indented behind
``  | `` so that none can pass for a line of its own). JSON output carries the exact text, with
those characters as JSON ``\\u`` escapes, which decode to the same string.
"""

from __future__ import annotations

import json
import time
from typing import Any

import click

from pigeon.protocol.characters import escape_hidden, first_hidden, is_hidden
from pigeon.protocol.media import Media
from pigeon.protocol.types import Message, User

CONTINUATION = "\n  | "  # what a line break inside a message body prints as


def visible(text: str) -> str:
    """``text`` as one line, each hidden character (protocol/characters.py) escaped."""
    return escape_hidden(text)


def visible_body(text: str) -> str:
    """A message body for people: line breaks (LF or CRLF) kept, every line after the first
    indented behind ``  | ``; anything else hidden, escaped as in :func:`visible`."""
    return CONTINUATION.join(visible(line) for line in text.replace("\r\n", "\n").split("\n"))


def json_line(obj: Any) -> str:
    """``obj`` as one line of JSON that decodes to exactly ``obj`` and that a terminal shows as
    it is: json.dumps escapes C0 controls itself, but with ensure_ascii=False (kept so that
    scripts and people read non-Latin text) it leaves DEL, C1 and bidi characters raw."""
    raw = json.dumps(obj, ensure_ascii=False)
    if first_hidden(raw) is None:
        return raw
    return "".join(_json_escape(ch) if is_hidden(ch) else ch for ch in raw)


def _json_escape(ch: str) -> str:
    # Outside strings json.dumps writes only ASCII punctuation, digits and spaces, so a hidden
    # character is always inside a string, where a \u escape means the same character.
    code = ord(ch)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def plural(count: int, noun: str) -> str:
    """``1 member``, ``2 members`` (issue 11, bug 8: "with 1 members")."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def duration(seconds: float) -> str:
    """A span a person reads at a glance: ``45 seconds``, ``1 minute``, ``5 minutes``, ``2
    hours``. Under two minutes, seconds unless whole (issue 11, bug 8: "in 0 minutes")."""
    whole = max(0, int(seconds))
    if whole < 60 or (whole < 120 and whole % 60):
        return plural(whole, "second")
    if whole < 2 * 3600:
        return plural(whole // 60, "minute")
    return plural(whole // 3600, "hour")


def who(user: User | None, user_id: int) -> str:
    if user is None:
        return f"user {user_id}"
    name = visible(user.name)
    return f"{name} (@{visible(user.username)})" if user.username else name


def message_json(msg: Message, sender: User | None, **extra: Any) -> str:
    body = {"chat": msg.chat_id, "id": msg.id, "sender": msg.sender_id,
            "sender_name": sender.name if sender else None,
            "sender_username": sender.username if sender else None,
            "text": msg.text, "date": msg.date}
    if msg.reply_to:
        body["reply_to"] = msg.reply_to
    if msg.sticker is not None:
        s = msg.sticker
        body["sticker"] = {"set": s.set, "index": s.index, "emoji": s.emoji,
                           "file_id": s.file_id}
    if msg.media is not None:
        body["media"] = {"kind": msg.media.kind, "file_id": msg.media.file_id,
                         "name": msg.media.name, "size": msg.media.size, "mime": msg.media.mime}
    body.update(extra)
    return json_line(body)


def message_line(msg: Message, sender: User | None, prefix: str = "",
                 quote: str | None = None) -> str:
    """``quote``: what a reply answers, made visible (events.quoted), shown beside its id."""
    reply = f" (reply to #{msg.reply_to}{': ' + quote if quote else ''})" if msg.reply_to else ""
    fwd = " [forwarded]" if msg.fwd_from else ""
    edited = " [edited]" if msg.edit_date else ""
    media = f" {media_label(msg.media)}" if msg.media is not None else ""
    return (f"{prefix}[chat:{msg.chat_id} #{msg.id}] {when(msg.date)} {who(sender, msg.sender_id)}"
            f"{reply}{fwd}{edited}:{media} {sticker_text(msg) or visible_body(msg.text)}")


def sticker_text(msg: Message) -> str:
    """``[sticker 😀 cats:3]`` for a sticker message, "" for any other."""
    s = msg.sticker
    return "" if s is None else f"[sticker {visible(s.emoji)} {visible(s.set)}:{s.index}]"


def media_label(media: Media) -> str:
    """``[photo 640x480 holiday.jpg, 51.2 KB: file f_...]``: what and how to get it."""
    shape = f" {media.width}x{media.height}" if media.width and media.height else ""
    name = f" {visible(media.name)}" if media.name else ""
    return (f"[{visible(media.kind)}{shape}{name}, {human_size(media.size)}: "
            f"file {visible(media.file_id)}]")


def human_size(size: int) -> str:
    value, unit = float(size), "B"
    for bigger in ("KB", "MB", "GB"):
        if value < 1000:
            break
        value, unit = value / 1000, bigger
    return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"


def echo(line: str) -> None:
    """Print ``line``. Each field was made visible where the line was built; this is the last
    guard, for a field that was not: hidden characters other than line breaks are escaped."""
    if first_hidden(line) is not None:
        line = "\n".join(visible(part) for part in line.split("\n"))
    click.echo(line)
