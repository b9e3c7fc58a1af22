"""Who receives which update: the rules name an audience, the backend finds its members.

An audience is a description, not a list, so that a backend resolves it the cheapest way it
has (every member of a chat is one statement, not a list of ids carried through Python;
later, for a very large chat, one write to the chat's own stream) while the rule of who is
in it stays here. :func:`includes` is that rule, member by member: a backend that resolves an
audience some other way must agree with it (the contract suite and tests/unit/domain check).

===========================  ==================================================================
update                       audience
===========================  ==================================================================
new message                  every member, the sender too (:func:`new_message`); in a private
                             chat whose other side blocked the sender or has not accepted
                             their request, the sender only (:func:`withheld`)
edit                         the members who could see the message (:func:`edit`): someone
                             who joined after it never saw it, and the edit would hand them
                             its text
delete for everyone          the members who could see any of the messages, and the deleter
delete for oneself           only the deleter
read inbox (I read)          only the reader (their other devices)
read outbox (they read mine) the authors of what was read (:mod:`.messages`)
chat changed                 every member, each with their own role, and whoever just left
                             (:func:`pigeon.domain.views.member_views`)
===========================  ==================================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple


class Everyone(NamedTuple):
    """Every current member of the chat."""


class SawMessage(NamedTuple):
    """The current members whose history reaches message ``message_id`` (they joined before
    it), and the users in ``also``."""

    message_id: int
    also: tuple[int, ...] = ()


class Only(NamedTuple):
    """Exactly these users."""

    user_ids: tuple[int, ...]


Audience = Everyone | SawMessage | Only


def includes(audience: Audience, user_id: int, history_from: int | None) -> bool:
    """Whether ``user_id`` receives an update for ``audience``; ``history_from`` is where
    their view of the chat begins, None if they are not a member."""
    if isinstance(audience, Only):
        return user_id in audience.user_ids
    if isinstance(audience, Everyone):
        return history_from is not None
    if user_id in audience.also:
        return True
    return history_from is not None and history_from < audience.message_id


def members_in(audience: Audience, members: Iterable[tuple[int, int]]) -> list[int]:
    """The users who receive an update for ``audience``: those among ``members``
    (``(user_id, history_from)`` of every current member) it includes, in the order given,
    then any others it names."""
    chosen = [uid for uid, since in members if includes(audience, uid, since)]
    named = (audience.user_ids if isinstance(audience, Only)
             else audience.also if isinstance(audience, SawMessage) else ())
    seen = set(chosen)
    for uid in named:
        if uid not in seen:
            seen.add(uid)
            chosen.append(uid)
    return chosen


def new_message() -> Audience:
    return Everyone()


def edit(message_id: int) -> Audience:
    return SawMessage(message_id)


def delete_for_everyone(message_ids: Iterable[int], deleter_id: int) -> Audience:
    """Only members who could see any of them hear of it (newcomers never saw them); the
    deleter always does, so that their other devices follow."""
    return SawMessage(max(message_ids), also=(deleter_id,))


def withheld(author_id: int) -> Audience:
    """A private message, or its edit, kept from the other side (pigeon.domain.blocks,
    pigeon.domain.requests): only the author's own devices hear of it."""
    return Only((author_id,))


def local_side(user_id: int) -> Audience:
    """A private chat with someone homed in another region (issue 12): only the side homed
    here is told here; the other side's region tells them (its own copy of the chat)."""
    return Only((user_id,))


def only(*user_ids: int) -> Audience:
    return Only(tuple(user_ids))
