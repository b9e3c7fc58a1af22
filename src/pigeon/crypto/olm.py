"""One device's Olm machine (vodozemac): its account, its sessions with other devices, and
what it signs and publishes. No I/O: the SDK (:mod:`pigeon.client.devices`) moves the bytes
and keeps the state in a :class:`pigeon.crypto.vault.Vault`.

What an envelope's ciphertext decrypts to is a :class:`Payload` naming the sender's and the
recipient's Ed25519 keys (as Matrix's Olm payloads do): Olm authenticates the sender's
Curve25519 key only, so this binds a message to the device identity people verify, and a
copy re-sent to another device does not decrypt as meant for it.
"""

from __future__ import annotations

import hashlib

import msgspec
import vodozemac

from pigeon.protocol.keys import (
    ClaimedKey,
    IdentityKeys,
    SignedKey,
    identity_signed,
    key_signed,
)

from .signatures import sign, verify

#: how many Olm sessions with one peer device are kept (newest first): a peer may start a
#: new one (both started at once, a lost state) while messages of the older still arrive
MAX_SESSIONS_PER_PEER = 4
#: digests of the last ciphertexts decrypted, kept to tell a copy of one (an envelope sent
#: twice: a retried call, a server that replays) from a message no session can read
SEEN_CIPHERTEXTS = 256
#: devices whose first message from this one is remembered (re-sends go no further back)
MAX_FIRST_SENT = 4096


class CannotDecrypt(Exception):
    """An envelope this device cannot read; the message says why."""


class DeviceState(msgspec.Struct):
    """What the vault holds: vodozemac's own pickles (themselves encrypted with the vault's
    pickle key) and whose device this is."""

    user_id: int
    device_id: int
    account: str
    sessions: dict[str, list[str]] = {}  # peer Curve25519 key -> session pickles
    # The device inbox's last position whose envelopes were decrypted and kept: saved with
    # the sessions they advanced, so that one read again (its ack was lost) is skipped,
    # not taken for a replay.
    inbox_seq: int = 0
    seen: list[bytes] = []  # digests of the ciphertexts decrypted last, oldest first
    created_ms: int = 0  # when this device's account was made (0: not known, older state)
    # device id -> when this device first encrypted for it (ms): what it may send again
    first_sent: dict[int, int] = {}


class Payload(msgspec.Struct):
    sender_ed25519: str
    recipient_ed25519: str
    body: bytes


_payload_decoder = msgspec.msgpack.Decoder(Payload)
_state_decoder = msgspec.msgpack.Decoder(DeviceState)


def verified_identity(user_id: int, device_id: int, identity: IdentityKeys) -> IdentityKeys:
    """``identity`` if its owner device signed it; KEY_SIGNATURE_INVALID otherwise (a server
    that swapped a key in)."""
    verify(identity.ed25519, [(identity_signed(user_id, device_id, identity.curve25519,
                                               identity.ed25519), identity.signature)])
    return identity


class OlmDevice:
    def __init__(self, user_id: int, device_id: int, account: vodozemac.Account,
                 sessions: dict[str, list[vodozemac.Session]] | None = None) -> None:
        self.user_id, self.device_id = user_id, device_id
        self.account = account
        self.sessions = sessions or {}
        self.inbox_seq = 0
        self.seen: list[bytes] = []
        self.created_ms = 0
        self.first_sent: dict[int, int] = {}

    @classmethod
    def new(cls, user_id: int, device_id: int, created_ms: int = 0) -> OlmDevice:
        device = cls(user_id, device_id, vodozemac.Account())
        device.created_ms = created_ms
        return device

    @classmethod
    def load(cls, data: bytes, pickle_key: bytes) -> OlmDevice:
        state = _state_decoder.decode(data)
        device = cls(state.user_id, state.device_id,
                     vodozemac.Account.from_pickle(state.account, pickle_key),
                     {peer: [vodozemac.Session.from_pickle(p, pickle_key) for p in pickles]
                      for peer, pickles in state.sessions.items()})
        device.inbox_seq = state.inbox_seq
        device.seen = state.seen[-SEEN_CIPHERTEXTS:]
        device.created_ms = state.created_ms
        device.first_sent = state.first_sent
        return device

    def dump(self, pickle_key: bytes) -> bytes:
        return msgspec.msgpack.encode(DeviceState(
            self.user_id, self.device_id, self.account.pickle(pickle_key),
            {peer: [s.pickle(pickle_key) for s in sessions]
             for peer, sessions in self.sessions.items()}, self.inbox_seq, self.seen,
            self.created_ms, self.first_sent))

    # -- what it publishes ----------------------------------------------------------------
    @property
    def ed25519(self) -> str:
        return self.account.ed25519_key.to_base64()

    def identity(self) -> IdentityKeys:
        curve = self.account.curve25519_key.to_base64()
        return IdentityKeys(curve25519=curve, ed25519=self.ed25519, signature=sign(
            self.account, identity_signed(self.user_id, self.device_id, curve, self.ed25519)))

    def _signed(self, purpose: str, key_id: str, key: vodozemac.Curve25519PublicKey) -> SignedKey:
        text = key.to_base64()
        return SignedKey(key_id=key_id, key=text, signature=sign(
            self.account, key_signed(self.device_id, purpose, key_id, text)))

    def new_one_time_keys(self, count: int) -> list[SignedKey]:
        """``count`` more one-time keys, with those generated but not yet published."""
        if count > 0:
            self.account.generate_one_time_keys(count)
        return [self._signed("otk", key_id, key)
                for key_id, key in self.account.one_time_keys.items()]

    def new_fallback_key(self) -> SignedKey:
        self.account.generate_fallback_key()
        ((key_id, key),) = self.account.fallback_key.items()
        return self._signed("fallback", key_id, key)

    def mark_published(self) -> None:
        self.account.mark_keys_as_published()

    # -- sessions ---------------------------------------------------------------------------
    def has_session(self, curve25519: str) -> bool:
        return bool(self.sessions.get(curve25519))

    def start_session(self, claimed: ClaimedKey) -> None:
        """An outbound session with the claimed device, once its signatures check out."""
        identity = verified_identity(claimed.user_id, claimed.device_id, claimed.identity)
        key = claimed.key
        verify(identity.ed25519, [(key_signed(claimed.device_id,
                                              "fallback" if claimed.fallback else "otk",
                                              key.key_id, key.key), key.signature)])
        session = self.account.create_outbound_session(
            vodozemac.Curve25519PublicKey.from_base64(identity.curve25519),
            vodozemac.Curve25519PublicKey.from_base64(key.key))
        self._keep(identity.curve25519, session)

    def _keep(self, curve25519: str, session: vodozemac.Session) -> None:
        kept = self.sessions.setdefault(curve25519, [])
        kept.insert(0, session)
        del kept[MAX_SESSIONS_PER_PEER:]

    def note_sent(self, device_id: int, now_ms: int) -> None:
        """Remember the time of the earliest message this device encrypted for
        ``device_id`` (the newest ``MAX_FIRST_SENT`` devices are kept)."""
        known = self.first_sent.get(device_id)
        if known is None or now_ms < known:
            self.first_sent[device_id] = now_ms
            if len(self.first_sent) > MAX_FIRST_SENT:
                oldest = min(self.first_sent, key=self.first_sent.__getitem__)
                del self.first_sent[oldest]

    def encrypt(self, recipient: IdentityKeys, body: bytes) -> tuple[int, bytes]:
        """(message type, ciphertext) for ``recipient``, over the newest session with it."""
        payload = msgspec.msgpack.encode(Payload(self.ed25519, recipient.ed25519, body))
        session = self.sessions[recipient.curve25519][0]
        return session.encrypt(payload).to_parts()

    def already_read(self, ciphertext: bytes) -> bool:
        """Whether this very ciphertext was decrypted here lately (a copy of it is refused
        by Olm as a replay; it is one of a message that was read)."""
        return _digest(ciphertext) in self.seen

    def decrypt(self, sender: IdentityKeys, kind: int, ciphertext: bytes) -> bytes:
        """The body a device with identity ``sender`` sent; CannotDecrypt if it is not an
        Olm message for one of our sessions with it (or a new one it starts), was already
        read, or was altered."""
        body = self._decrypt_payload(sender, kind, ciphertext)
        self.seen.append(_digest(ciphertext))
        del self.seen[:-SEEN_CIPHERTEXTS]
        return body

    def _decrypt_payload(self, sender: IdentityKeys, kind: int, ciphertext: bytes) -> bytes:
        try:
            message = vodozemac.AnyOlmMessage.from_parts(kind, ciphertext)
        except Exception as exc:  # vodozemac raises its own per kind; all mean "not Olm"
            raise CannotDecrypt(f"not an Olm message: {exc}") from None
        plaintext = self._open(sender.curve25519, kind, message)
        try:
            payload = _payload_decoder.decode(plaintext)
        except msgspec.DecodeError:
            raise CannotDecrypt("the decrypted payload is malformed") from None
        if payload.sender_ed25519 != sender.ed25519 or payload.recipient_ed25519 != self.ed25519:
            raise CannotDecrypt("the payload names other devices than its envelope")
        return payload.body

    def _open(self, curve25519: str, kind: int, message: vodozemac.AnyOlmMessage) -> bytes:
        sessions = self.sessions.get(curve25519, [])
        if kind == 0:
            pre_key = message.to_pre_key()
            for session in sessions:
                if session.session_matches(pre_key):
                    return self._decrypt(session, message)
            try:
                session, plaintext = self.account.create_inbound_session(
                    vodozemac.Curve25519PublicKey.from_base64(curve25519), pre_key)
            except vodozemac.SessionCreationException as exc:
                raise CannotDecrypt(f"cannot start a session from it: {exc}") from None
            self._keep(curve25519, session)
            return plaintext
        for session in sessions:
            try:
                return session.decrypt(message)
            except vodozemac.OlmDecryptionException:
                continue
        raise CannotDecrypt("no session with the sending device decrypts it (replayed, "
                            "altered, or its session is lost)")

    @staticmethod
    def _decrypt(session: vodozemac.Session, message: vodozemac.AnyOlmMessage) -> bytes:
        try:
            return session.decrypt(message)
        except vodozemac.OlmDecryptionException as exc:
            raise CannotDecrypt(f"cannot decrypt (replayed or altered): {exc}") from None



def _digest(ciphertext: bytes) -> bytes:
    return hashlib.sha256(ciphertext).digest()[:16]
