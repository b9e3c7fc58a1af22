"""Which protocol version brought each shape, in one place; and what older peers get instead.

A client says which versions it speaks (``hello.versions``) and the server picks the highest
both speak. From then on the server sends that connection only shapes of that version or
older: a shape introduced later is *held back* (:mod:`.holdback`) — downgraded to one the
client knows, never sent as something it would fail to decode. Readers survive the rest:
every union on the wire has a fallback for what the reader does not know (docs/protocol.md,
"Growing the protocol").

Version 1: frames ``hello`` ``call`` ``welcome`` ``result`` ``error`` ``updates``; seven update
types, each carrying the user's ``pts``; closed enums.
Version 2: every sequenced update travels as an item of a named stream (the ``items`` frame,
``updates.get_stream_difference``); open enums and unions everywhere (unknown values and
types are skipped, not fatal).

Everything here is data plus tiny look-ups, so that the shapes a version holds read as one
table. Tests (and only tests: :mod:`pigeon.testing_shapes`) register shapes of a version no
released client knows, to prove that older clients keep working.
"""

from __future__ import annotations

#: the value an open enum takes, on the reader's side, when the writer sent one it does not know
UNKNOWN = "unknown"

#: server frames (tag ``t``) that a connection of an older version never receives
FRAME_SINCE: dict[str, int] = {
    "welcome": 1, "result": 1, "error": 1, "updates": 1,
    "items": 2,
}

#: methods that did not exist in older versions: a connection of such a version calling one
#: is answered ``UNKNOWN_METHOD``, as its version defines no such method (absent here: 1)
METHOD_SINCE: dict[str, int] = {
    "updates.get_stream_difference": 2,
    "updates.ack_stream": 2,
    "keys.upload": 2,
    "keys.query": 2,
    "keys.claim": 2,
    "envelopes.send": 2,
    "stickers.create_set": 2,
    "stickers.remove": 2,
    "stickers.move": 2,
    "stickers.publish": 2,
    "stickers.search": 2,
    "stickers.get_set": 2,
    "stickers.install": 2,
    "stickers.uninstall": 2,
    "stickers.installed": 2,
    "stickers.by_emoji": 2,
    "messages.send_sticker": 2,
}

#: update types (tag ``u``) and the version that brought each
UPDATE_SINCE: dict[str, int] = {
    "new_message": 1, "edit_message": 1, "delete_messages": 1, "read_inbox": 1,
    "read_outbox": 1, "chat": 1, "typing": 1,
    "envelope": 2, "keys_low": 2,  # device inboxes only, which a version-1 device never reads
    # the user's own stream: a version-1 device gets an empty delete_messages in its place
    # (holdback.placeholder), a version-2 device that does not know it skips it
    "stickers_installed": 2,
}

#: the values of each open enum (the strings that server → client fields carry) and the
#: version that brought each. What a client *sends* stays a closed set (``types.Role``...):
#: the server is the authority and refuses a value it does not know with INVALID_ARGUMENT.
ENUMS: dict[str, dict[str, int]] = {
    # supergroup: a very large group whose updates travel on its own stream, chat:<id>
    "ChatKind": {"private": 1, "group": 1, "supergroup": 2},
    "Role": {"owner": 1, "admin": 1, "member": 1},
    "WhoCanAdd": {"everyone": 1, "contacts": 1, "nobody": 1},
    "WhoCanMessage": {"everyone": 1, "contacts": 1, "nobody": 1},
    # Message.media.kind (issue 10). Marked 1: a version-1 reader ignores the whole media
    # field (unknown fields are skipped), so there is nothing to hold back
    "MediaKind": {"photo": 1, "document": 1},
}

#: what a connection older than a value's version gets instead of it, per (enum, value)
OLDER_VALUE: dict[tuple[str, str], str] = {("ChatKind", "supergroup"): "group"}

_newest = 1  # the newest version of any update type or enum value: hold-back's fast path


def newest_shape() -> int:
    """The newest version that any update type or enum value belongs to. A connection of
    this version or later needs nothing held back."""
    return _newest


def method_allowed(method: str, version: int) -> bool:
    return METHOD_SINCE.get(method, 1) <= version


def known(enum: str, value: str) -> str:
    """``value`` if this reader knows it as a value of ``enum``, else :data:`UNKNOWN`."""
    return value if value in ENUMS[enum] else UNKNOWN


def value_for(enum: str, value: str, version: int) -> str:
    """What a connection of ``version`` is sent for ``value``: itself, or what its version
    has instead (a value this process does not know is sent as it is)."""
    if ENUMS[enum].get(value, 1) <= version:
        return value
    return OLDER_VALUE[(enum, value)]


def register_value(enum: str, value: str, since: int, older: str) -> None:
    """A new value of an open enum; connections older than ``since`` get ``older``."""
    if ENUMS[enum].get(older, since) >= since:
        raise ValueError(f"{older!r} must be a value of {enum} older than version {since}")
    ENUMS[enum][value] = since
    OLDER_VALUE[(enum, value)] = older
    refresh()


def register_update(tag: str, since: int) -> None:
    """A new update type (the class itself is registered with :func:`.updates.register`)."""
    UPDATE_SINCE[tag] = since
    refresh()


def refresh() -> None:
    """Recompute :func:`newest_shape` after the tables changed."""
    global _newest
    _newest = max([*UPDATE_SINCE.values(), *(v for e in ENUMS.values() for v in e.values())])


refresh()
