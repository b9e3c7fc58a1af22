"""Message requests and contacts (issue 11): who may write to whom directly.

The first private message from someone the recipient does not know arrives as a *request*:
stored, listed by ``requests.list``, kept out of the chats list and pushed to nobody, until
the recipient accepts it (the chat joins their list, its latest messages reach their devices
as new ones, :data:`DELIVERED_ON_ACCEPT`) or
declines it (its messages, then and later, stay hidden from them). Replying accepts. Each
person's ``who_can_message`` setting decides what happens to strangers:

=========  =============================  ===========================================
setting    someone the recipient knows     a stranger
=========  =============================  ===========================================
everyone   delivered                       delivered
contacts   delivered                       a request
nobody     delivered                       refused (USER_PRIVACY_RESTRICTED)
=========  =============================  ===========================================

"Knows" (:class:`Acquaintance`): the sender is in the recipient's contacts, the recipient
wrote to them in a private chat, found them by username or phone, or shares a group with
them. The decision is taken once per private chat and side, when the chat is opened (by
either side); from then on the chat's request row says what happens.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from pigeon.protocol.errors import Conflict, Forbidden, NotFound

from .people import no_such_user

WHO_CAN_MESSAGE = ("everyone", "contacts", "nobody")
FirstContact = Literal["deliver", "request", "refuse"]
RequestState = Literal["pending", "accepted", "declined"]
MAX_CONTACTS = 10_000
# Accepting a request delivers its latest messages to the recipient's devices as new ones
# (the older are in the chat's history): bounded, since a stranger may have written many.
DELIVERED_ON_ACCEPT = 100


class Acquaintance(NamedTuple):
    """What ties a recipient to a sender, as a backend found it."""

    in_contacts: bool = False      # the recipient added the sender to their contacts
    wrote_to_sender: bool = False  # the recipient sent them a private message
    found_sender: bool = False     # the recipient found them by username or phone
    share_group: bool = False      # they are in a group together


def first_contact(who_can_message: str, ties: Acquaintance) -> FirstContact:
    """What a private chat opened between them means for the recipient."""
    if who_can_message == "everyone" or any(ties):
        return "deliver"
    return "request" if who_can_message == "contacts" else "refuse"


def check_first_contact(verdict: FirstContact, recipient_id: int) -> None:
    if verdict == "refuse":
        raise Forbidden(f"user {recipient_id} accepts messages from their contacts only",
                        code="USER_PRIVACY_RESTRICTED")


def delivered(state: RequestState | None) -> bool:
    """Whether a private message reaches the recipient (pushed, in the chats list). ``None``:
    the chat was never a request."""
    return state in (None, "accepted")


def hidden(state: RequestState | None) -> bool:
    """Whether it is hidden from them for good (a declined request)."""
    return state == "declined"


def in_chat_list(state: RequestState | None) -> bool:
    return delivered(state)


def answer(state: RequestState | None, chat_id: int) -> None:
    """A request may be accepted or declined while it is pending (declining twice, or
    accepting after declining, changes nothing the sender could notice: REQUEST_NOT_FOUND)."""
    if state != "pending":
        raise NotFound(f"no message request in chat {chat_id}", code="REQUEST_NOT_FOUND")


def check_contact(user_id: int, peer_id: int, visible: bool, count: int, already: bool,
                  max_contacts: int = MAX_CONTACTS) -> None:
    """Whether ``peer_id`` may be added to ``user_id``'s contacts: someone they may see
    (found by username, by a discoverable phone, ...), within the bound."""
    if peer_id == user_id:
        raise Conflict("you cannot add yourself to your contacts", code="PEER_IS_SELF")
    if not visible:
        raise no_such_user(peer_id)
    if not already and count >= max_contacts:
        raise Conflict(f"you have {count} contacts, the most one account may have",
                       code="QUOTA_EXCEEDED")
