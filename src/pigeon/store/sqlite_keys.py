"""SQL of device keys and envelopes (SQLite backend; issue 9).

Tables (migration ``device_keys``): ``device_keys`` (one row per device that published its
identity keys, with its fallback key) and ``one_time_keys``. Public keys only: the server
never receives a private one. The rules are in :mod:`pigeon.domain.keys`. A claim takes its
one-time key in the writer's transaction, so two claims, however close, never get the same.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from pigeon.domain import keys, streams
from pigeon.protocol import updates as up
from pigeon.protocol.errors import Unauthorized
from pigeon.protocol.keys import ClaimedKey, DeviceKeys, Envelope, IdentityKeys, SignedKey

from .sqlite_people import visible
from .sqlite_rows import STORED, chunks, encode, marks
from .sqlite_streams import append, head

_IDENTITY_COLS = "k.session_id, k.user_id, k.curve25519, k.ed25519, k.signature"


def forget(conn: sqlite3.Connection, session_ids: list[int]) -> None:
    """A session that ended takes its keys with it, in the transaction that ends it."""
    for chunk in chunks(session_ids):
        conn.execute(f"DELETE FROM one_time_keys WHERE session_id IN ({marks(chunk)})", chunk)
        conn.execute(f"DELETE FROM device_keys WHERE session_id IN ({marks(chunk)})", chunk)


def _held(conn: sqlite3.Connection, session_id: int) -> keys.Held:
    row = conn.execute("SELECT curve25519, ed25519, fallback_key IS NOT NULL FROM device_keys "
                       "WHERE session_id = ?", (session_id,)).fetchone()
    (count,) = conn.execute("SELECT COUNT(*) FROM one_time_keys WHERE session_id = ?",
                            (session_id,)).fetchone()
    if row is None:
        return keys.Held(None, count, False)
    return keys.Held((row[0], row[1]), count, bool(row[2]))


def _q_identity(conn: sqlite3.Connection, session_id: int) -> tuple[str, str] | None:
    """The identity keys a device published ((curve25519, ed25519)), if it did."""
    return _held(conn, session_id).identity


def _tx_upload(conn: sqlite3.Connection, user_id: int, session_id: int, verified_with: str,
               identity: IdentityKeys | None, one_time_keys: list[SignedKey],
               fallback: SignedKey | None) -> keys.Held:
    """Store what the server verified with Ed25519 key ``verified_with``; returns what it
    holds now. A session that ended meanwhile stores nothing (SESSION_INVALID)."""
    if conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is None:
        raise Unauthorized("this session was terminated", code="SESSION_INVALID")
    held = _held(conn, session_id)
    if identity is not None and keys.check_identity(held, identity.curve25519,
                                                    identity.ed25519):
        conn.execute("INSERT INTO device_keys (session_id, user_id, curve25519, ed25519, "
                     "signature) VALUES (?, ?, ?, ?, ?)",
                     (session_id, user_id, identity.curve25519, identity.ed25519,
                      identity.signature))
        held = held._replace(identity=(identity.curve25519, identity.ed25519))
    if one_time_keys or fallback is not None:
        keys.require_identity(held)
    # Signatures were checked against ``verified_with``: it must be the key now held (a
    # concurrent first upload of other identity keys would otherwise slip through).
    if held.identity is not None and held.identity[1] != verified_with:
        keys.check_identity(held, "", verified_with)
    fresh = {k.key_id: k for k in one_time_keys}  # at most MAX_KEYS_PER_UPLOAD
    if fresh:
        for (key_id,) in conn.execute(
                f"SELECT key_id FROM one_time_keys WHERE session_id = ? "
                f"AND key_id IN ({','.join('?' * len(fresh))})", (session_id, *fresh)):
            del fresh[key_id]  # uploaded before (a resent call): kept once
    keys.check_room(held, len(fresh))
    conn.executemany("INSERT INTO one_time_keys (session_id, key_id, key, signature) "
                     "VALUES (?, ?, ?, ?)",
                     [(session_id, k.key_id, k.key, k.signature) for k in fresh.values()])
    if fallback is not None:
        conn.execute("UPDATE device_keys SET fallback_id = ?, fallback_key = ?, "
                     "fallback_signature = ? WHERE session_id = ?",
                     (fallback.key_id, fallback.key, fallback.signature, session_id))
    return _held(conn, session_id)


def _q_held(conn: sqlite3.Connection, session_id: int) -> keys.Held:
    return _held(conn, session_id)


def _identity(row: tuple) -> IdentityKeys:  # type: ignore[type-arg]
    return IdentityKeys(curve25519=row[2], ed25519=row[3], signature=row[4])


def _q_query(conn: sqlite3.Connection, user_ids: list[int]) -> list[DeviceKeys]:
    """Every device of these users that published its identity keys (the caller has
    already kept only the users it may see)."""
    out: list[DeviceKeys] = []
    for chunk in chunks(sorted(set(user_ids))):
        out += [DeviceKeys(user_id=r[1], device_id=r[0], name=r[5], identity=_identity(r))
                for r in conn.execute(
                    f"SELECT {_IDENTITY_COLS}, s.device FROM device_keys k JOIN sessions s "
                    f"ON s.id = k.session_id WHERE k.user_id IN ({marks(chunk)}) "
                    "ORDER BY k.user_id, k.session_id", chunk)]
    return out


def _tx_claim(conn: sqlite3.Connection, viewer_id: int, caller_session: int,
              session_ids: list[int],
              may_see: Callable[[sqlite3.Connection, int, list[int]], set[int]] = visible,
              ) -> list[tuple[ClaimedKey, int]]:
    """One key of each device whose owner ``viewer_id`` may see (not the caller's own
    device): a one-time key, deleted as it is handed out, else the fallback key. Returns each
    with the one-time keys its device has left; other devices are left out. ``may_see``:
    who is seen (a claim from another region: sqlite_region_keys.reachable)."""
    rows = []
    for session_id in sorted(set(session_ids) - {caller_session}):
        row = conn.execute(
            f"SELECT {_IDENTITY_COLS}, fallback_id, fallback_key, fallback_signature "
            "FROM device_keys k WHERE k.session_id = ?", (session_id,)).fetchone()
        if row is not None:
            rows.append(row)
    seen = may_see(conn, viewer_id, [row[1] for row in rows])
    out: list[tuple[ClaimedKey, int]] = []
    for row in rows:
        session_id = row[0]
        if row[1] not in seen:
            continue
        otk = conn.execute(
            "SELECT key_id, key, signature FROM one_time_keys WHERE session_id = ? "
            "ORDER BY key_id LIMIT 1 /*FOR UPDATE SKIP LOCKED*/",  # see postgres_dialect
            (session_id,)).fetchone()
        if otk is not None:
            conn.execute("DELETE FROM one_time_keys WHERE session_id = ? AND key_id = ?",
                         (session_id, otk[0]))
            key, fallback = SignedKey(key_id=otk[0], key=otk[1], signature=otk[2]), False
        elif row[5] is not None:
            key, fallback = SignedKey(key_id=row[5], key=row[6], signature=row[7]), True
        else:
            continue
        (left,) = conn.execute("SELECT COUNT(*) FROM one_time_keys WHERE session_id = ?",
                               (session_id,)).fetchone()
        out.append((ClaimedKey(user_id=row[1], device_id=session_id, identity=_identity(row),
                               key=key, fallback=fallback), left))
    return out


def ties(conn: sqlite3.Connection, sender_id: int, user_id: int) -> keys.Ties:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM wrote_to WHERE (user_id = ?1 AND peer_id = ?2) "
        "OR (user_id = ?2 AND peer_id = ?1)), "
        "EXISTS (SELECT 1 FROM members a JOIN chats c ON c.id = a.chat_id "
        "AND c.kind != 'private' JOIN members b ON b.chat_id = a.chat_id AND b.user_id = ?1 "
        "WHERE a.user_id = ?2)", (sender_id, user_id)).fetchone()
    return keys.Ties(sender_id == user_id, bool(row[0]), bool(row[1]))


def _tx_send_envelopes(conn: sqlite3.Connection, sender_id: int, sender_session: int,
                       envelopes: list[Envelope], now: float) -> list[tuple[int, up.Envelope]]:
    """Each envelope into its device's inbox, in order, all or none: DEVICE_NOT_FOUND for a
    device that does not exist or whose owner the sender may not reach. Returns each
    target's item (its position is the update's ``pts``)."""
    streams.check_devices([e.device_id for e in envelopes])
    owners: dict[int, int] = {}
    for chunk in chunks(sorted({e.device_id for e in envelopes})):
        owners.update(conn.execute(
            f"SELECT id, user_id FROM sessions WHERE id IN ({marks(chunk)})", chunk))
    allowed: dict[int, bool] = {}
    for envelope in envelopes:
        owner = owners.get(envelope.device_id)
        if owner is not None and owner not in allowed:
            allowed[owner] = keys.may_send_envelope(ties(conn, sender_id, owner))
        if owner is None or not allowed[owner]:
            raise keys.not_reachable(envelope.device_id)
    out: list[tuple[int, up.Envelope]] = []
    for envelope in envelopes:
        stream = streams.device_stream(envelope.device_id)
        update = up.Envelope(pts=head(conn, stream) + 1, sender_id=sender_id,
                             sender_device=sender_session, type=envelope.type,
                             ciphertext=envelope.ciphertext)
        body = encode(update)
        streams.check_envelopes([body])
        (seq,) = append(conn, stream, [(STORED, 0, body)], now)
        assert seq == update.pts  # one writer: nobody appended between the read and this
        out.append((envelope.device_id, update))
    return out
