"""One device's Megolm state for end-to-end encrypted groups (vodozemac): the outbound
session it sends with in each group, the inbound sessions it reads others with, when to
rotate, and who may have a key again. No I/O: :mod:`pigeon.client.secret_groups` moves the
bytes and keeps this state in the device's vault.

A group message's ``ciphertext`` (opaque to the server) is a :class:`Sealed`: which device
sent it and over which session, in the clear (a reader needs them to find the key, as
Matrix's ``m.megolm.v1`` events carry them), and the Megolm message. What that decrypts to
is an :class:`Inner` naming the chat and the sending device, so that a server cannot move
a message to another chat, or pass one device's message off as another's.

Keys arrive over Olm (:class:`pigeon.crypto.payloads.RoomKey`) from the session's owner
device, or forwarded by one of the reader's own devices; an inbound session is kept under
(chat, sending device, session id) with the user who owns it, and a message whose server
``sender_id`` names another user does not decrypt.
"""

from __future__ import annotations

from typing import Annotated, NamedTuple

import msgspec
import vodozemac
from msgspec import Meta

from pigeon.protocol import limits

from .olm import CannotDecrypt

#: how many senders' inbound sessions and how many old outbound sessions one device keeps
MAX_INBOUND_SESSIONS = 10_000
MAX_OLD_OUTBOUND = 64
#: messages waiting for their key, at most (the oldest go first)
MAX_PENDING = 10_000
#: the (session, index) pairs remembered to refuse a replayed message, at most
MAX_SEEN = 100_000

DeviceId = Annotated[int, Meta(ge=1, le=2**62)]


class RotationPolicy(NamedTuple):
    """When a sender starts a new outbound session besides membership changes (settings;
    Matrix's ``rotation_period_msgs``/``rotation_period_ms`` defaults are these)."""

    max_messages: int = 100
    max_age: float = 7 * 24 * 3600.0  # seconds


class Sealed(msgspec.Struct, kw_only=True):
    """What ``Message.ciphertext`` holds: version 1."""

    v: int = 1
    device_id: DeviceId
    session_id: Annotated[str, Meta(max_length=128)]
    megolm: Annotated[bytes, Meta(max_length=limits.MAX_MESSAGE_CIPHERTEXT_BYTES)]


class Inner(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """The plaintext inside the Megolm message."""

    chat_id: Annotated[int, Meta(ge=1, le=2**62)]
    device_id: DeviceId
    text: Annotated[str, Meta(max_length=limits.MAX_TEXT_CHARS)]


class Outbound(msgspec.Struct, kw_only=True):
    """This device's sending session in one group; ``members`` the users and ``devices``
    the member devices it was shared with (a change in either rotates it)."""

    chat_id: int
    pickle: str
    session_id: str
    created: float
    sent: int = 0
    members: list[int] = []
    devices: list[int] = []


class Inbound(msgspec.Struct, kw_only=True):
    chat_id: int
    device_id: int        # the device that sends with it
    user_id: int          # whose device that is
    session_id: str
    pickle: str


class Pending(msgspec.Struct, frozen=True, kw_only=True):
    """A group message whose key has not arrived yet: kept, shown as pending, decrypted
    when the key comes."""

    chat_id: int
    message_id: int
    sender_id: int
    date: float
    ciphertext: bytes
    reply_to: int | None = None


class KeyTooNew(CannotDecrypt):
    """The key held starts after this message (it was re-shared from a later index): the
    message waits for an earlier one, as one whose key has not come yet."""


class GroupState(msgspec.Struct, kw_only=True):
    device_id: int = 0                              # the device this state belongs to
    outbound: dict[int, Outbound] = {}              # chat -> current sending session
    old_outbound: list[Outbound] = []               # rotated away; kept to re-share keys
    inbound: dict[str, Inbound] = {}                # inbound_key(...) -> session
    pending: list[Pending] = []
    seen: dict[str, int] = {}                       # "session_id:index" -> message id
    requested: list[str] = []                       # inbound keys asked for already


class Decrypted(NamedTuple):
    text: str
    device_id: int
    session_id: str
    message_index: int


def inbound_key(chat_id: int, device_id: int, session_id: str) -> str:
    return f"{chat_id}:{device_id}:{session_id}"


_sealed_decoder = msgspec.msgpack.Decoder(Sealed)
_inner_decoder = msgspec.msgpack.Decoder(Inner)
_state_decoder = msgspec.msgpack.Decoder(GroupState)


def load_state(data: bytes | None) -> GroupState:
    return GroupState() if data is None else _state_decoder.decode(data)


def dump_state(state: GroupState) -> bytes:
    return msgspec.msgpack.encode(state)


def read_sealed(ciphertext: bytes) -> Sealed:
    try:
        return _sealed_decoder.decode(ciphertext)
    except msgspec.DecodeError as exc:
        raise CannotDecrypt(f"not a group message this device reads: {exc}") from None


def message_index(sealed: Sealed) -> int:
    """The Megolm index a sealed message was sent at (0 if it is not one)."""
    try:
        return vodozemac.MegolmMessage.from_bytes(sealed.megolm).message_index()
    except (vodozemac.DecodeException, ValueError):
        return 0


def rotation_due(out: Outbound, now: float, policy: RotationPolicy, members: set[int],
                 devices: set[int]) -> str | None:
    """Why ``out`` must not be used for the next message (None: it may be). Any change of
    members or devices rotates: someone who left must not read on, a new device reads only
    what comes after it."""
    if set(out.members) != members:
        return "members changed"
    if set(out.devices) != devices:
        return "devices changed"
    if out.sent >= policy.max_messages:
        return f"{out.sent} messages sent"
    if now - out.created >= policy.max_age:
        return "too old"
    return None


def new_outbound(chat_id: int, now: float, members: set[int], devices: set[int],
                 pickle_key: bytes) -> tuple[Outbound, str]:
    """A fresh sending session and its key (to share with the member devices)."""
    session = vodozemac.GroupSession()
    key = session.session_key.to_base64()
    return Outbound(chat_id=chat_id, pickle=session.pickle(pickle_key),
                    session_id=session.session_id, created=now, members=sorted(members),
                    devices=sorted(devices)), key


def encrypt(out: Outbound, device_id: int, text: str, pickle_key: bytes) -> bytes:
    """``text`` sealed for the group; ``out`` advances (its pickle and count)."""
    session = vodozemac.GroupSession.from_pickle(out.pickle, pickle_key)
    inner = msgspec.msgpack.encode(Inner(chat_id=out.chat_id, device_id=device_id, text=text))
    megolm = session.encrypt(inner).to_bytes()
    out.pickle = session.pickle(pickle_key)
    out.sent += 1
    return msgspec.msgpack.encode(Sealed(device_id=device_id, session_id=out.session_id,
                                         megolm=megolm))


def inbound_from_key(chat_id: int, device_id: int, user_id: int, session_id: str,
                     session_key: str, exported: bool, pickle_key: bytes) -> Inbound:
    """An inbound session from a shared key (``exported``: re-shared, from some index on);
    CannotDecrypt if it is no key or not the session it claims to be."""
    try:
        session = (vodozemac.InboundGroupSession.import_session(
            vodozemac.ExportedSessionKey(session_key)) if exported else
            vodozemac.InboundGroupSession(vodozemac.SessionKey(session_key)))
    except (vodozemac.SessionKeyDecodeException, vodozemac.KeyException, ValueError) as exc:
        raise CannotDecrypt(f"not a group session key: {exc}") from None
    if session.session_id != session_id:
        raise CannotDecrypt("the key is not of the session it names")
    return Inbound(chat_id=chat_id, device_id=device_id, user_id=user_id,
                   session_id=session_id, pickle=session.pickle(pickle_key))


def first_known_index(inbound: Inbound, pickle_key: bytes) -> int:
    return vodozemac.InboundGroupSession.from_pickle(inbound.pickle, pickle_key) \
        .first_known_index


def better(new: Inbound, old: Inbound | None, pickle_key: bytes) -> bool:
    """Whether ``new`` reads more than ``old`` (an earlier first index): a re-shared key
    never replaces one that reads further back."""
    return old is None or first_known_index(new, pickle_key) < first_known_index(old, pickle_key)


def export(inbound: Inbound, index: int, pickle_key: bytes) -> str | None:
    """The key from ``index`` on (or from the first index this device knows), None if it
    cannot be exported there."""
    session = vodozemac.InboundGroupSession.from_pickle(inbound.pickle, pickle_key)
    exported = session.export_at(max(index, session.first_known_index))
    return None if exported is None else exported.to_base64()


def own_inbound(out: Outbound, user_id: int, device_id: int, pickle_key: bytes) -> Inbound:
    """The sender's own copy of its new session, so that it reads its messages and can
    re-share the key from the first index."""
    session = vodozemac.GroupSession.from_pickle(out.pickle, pickle_key)
    return Inbound(chat_id=out.chat_id, device_id=device_id, user_id=user_id,
                   session_id=out.session_id,
                   pickle=vodozemac.InboundGroupSession(session.session_key).pickle(pickle_key))


def decrypt(inbound: Inbound, sealed: Sealed, chat_id: int, sender_id: int,
            pickle_key: bytes) -> Decrypted:
    """The text of a group message; CannotDecrypt if it was altered, is from before the
    key's first index, or names another chat, device or sender than it came with."""
    if inbound.user_id != sender_id:
        raise CannotDecrypt("the message's sender does not own the session it names")
    session = vodozemac.InboundGroupSession.from_pickle(inbound.pickle, pickle_key)
    try:
        message = vodozemac.MegolmMessage.from_bytes(sealed.megolm)
    except (vodozemac.DecodeException, ValueError) as exc:
        raise CannotDecrypt(f"not a Megolm message: {exc}") from None
    if message.message_index() < session.first_known_index:
        raise KeyTooNew(f"the key held starts at index {session.first_known_index}, after "
                        f"this message's {message.message_index()}")
    try:
        plain = session.decrypt(message)
    except (vodozemac.MegolmDecryptionException, ValueError) as exc:
        raise CannotDecrypt(f"cannot decrypt (altered, or not of this session): {exc}") \
            from None
    try:
        inner = _inner_decoder.decode(plain.plaintext)
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise CannotDecrypt("the decrypted message is malformed") from None
    if inner.chat_id != chat_id or inner.device_id != sealed.device_id:
        raise CannotDecrypt("the message names another chat or device than it came with")
    return Decrypted(inner.text, sealed.device_id, sealed.session_id, plain.message_index)


def check_replay(state: GroupState, decrypted: Decrypted, message_id: int) -> None:
    """A (session, index) read as one message and now arriving as another is a replay."""
    key = f"{decrypted.session_id}:{decrypted.message_index}"
    first = state.seen.get(key)
    if first is not None and first != message_id:
        raise CannotDecrypt(f"replayed: this ciphertext was message #{first}")
    if first is None:
        if len(state.seen) >= MAX_SEEN:
            state.seen.pop(next(iter(state.seen)))
        state.seen[key] = message_id


def first_index(out: Outbound | None, requester_user: int, requester_device: int,
                own_user: int) -> int | None:
    """The first message index of ``out`` a device may have again (None: none of it). A
    device it was shared with, or one of our own, from the start; a device a member added
    since (a new login: the session rotates only at our next send) from our next message
    on, never what was sent before it existed."""
    if not entitled(out, requester_user, own_user):
        return None
    if requester_user == own_user or out is None or requester_device in out.devices:
        return 0
    return out.sent


def entitled(out: Outbound | None, requester_user: int, own_user: int) -> bool:
    """Whether a device of ``requester_user`` may have a session of ours again: one of our
    own devices, or a member at the time of the session (sessions rotate whenever members
    change, so a session's members are those of every index of it)."""
    if requester_user == own_user:
        return True
    return out is not None and requester_user in out.members
