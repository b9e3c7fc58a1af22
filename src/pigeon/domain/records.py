"""The rows that the rules take, as a backend reads them inside its transaction.

Plain named tuples: a backend builds them from whatever its driver returns, the rules never
learn where they came from. Message rows are the protocol's own :class:`Message`.
"""

from __future__ import annotations

from typing import NamedTuple

from pigeon.protocol.types import ChatKind, Role


class Standing(NamedTuple):
    """Where one user stands in one chat, and where the chat stands: what every write in a
    chat reads first."""

    kind: ChatKind
    role: Role
    history_from: int         # they see the messages after this id (they joined then)
    read_inbox_max_id: int    # they read up to this id
    last_message_id: int      # the chat's newest message id
    secret: bool = False      # an end-to-end encrypted group (domain/encryption.py)
    home_region: str | None = None  # a replica of a group homed there (written from there)


class MemberRow(NamedTuple):
    """One member of a chat."""

    user_id: int
    role: Role
    joined: float
    history_from: int


class ChatRow(NamedTuple):
    """One chat, as every member sees it alike (the role and peer differ per member)."""

    id: int
    kind: ChatKind
    title: str
    member_count: int
    last_message_id: int
    pinned_message_id: int = 0
    secret: bool = False


class Departure(NamedTuple):
    """A period of membership that ended: its member could see the message ids in
    (``first_id``, ``last_id``], and the chat had counted ``edit_seq`` edits when it ended."""

    first_id: int
    last_id: int
    edit_seq: int
