"""Device keys and envelopes across regions (SQLite operations, run by both engines;
docs/architecture.md, "Regions", "Secret chats across regions").

A region answers for its own people's devices only, by its own rule of who may reach whom,
run on its own copy: the asker may see them (:func:`.sqlite_people.visible`) or is tied to
them (:func:`pigeon.domain.keys.may_send_envelope`: either wrote to the other in a private
chat, or a group together), the ties every region learns from the messages that crossed.
Envelopes to devices homed elsewhere are queued in the outbox in the transaction that
appends the local ones (all or none), one row each; the device's region checks the tie
again and appends it to the device's inbox once (by the stream sequence).
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from pigeon.protocol import updates as up
from pigeon.protocol.keys import ClaimedKey, DeviceKeys, Envelope
from pigeon.protocol.regions import CrossEnvelope

from .sqlite_keys import _q_query, _tx_claim, _tx_send_envelopes, ties
from .sqlite_people import visible
from .sqlite_regions import _advance, _tx_remember_remote, enqueue
from .sqlite_rows import chunks, marks

if TYPE_CHECKING:
    from .sqlite import SqlEngine

Delivered = list[tuple[int, up.Envelope]]


def reachable(conn: sqlite3.Connection, viewer_id: int, ids: list[int]) -> set[int]:
    """The people among ``ids`` homed here that ``viewer_id`` (homed elsewhere) may see or is
    tied to. Seeing at home may come from a lookup the viewer made, which this region
    answered without knowing who asked: the ties stand in for it."""
    homed: list[int] = []
    for chunk in chunks(sorted(set(ids))):
        homed += [r[0] for r in conn.execute(
            f"SELECT id FROM users WHERE id IN ({marks(chunk)}) AND home_region IS NULL "
            "AND disabled = 0", chunk)]
    seen = visible(conn, viewer_id, homed)
    # not the envelope rule's wider ties (a supergroup together): at home a claim or a
    # query needs what ``visible`` counts, and a supergroup's members do not see each other
    return seen | {i for i in homed if i not in seen and ties(conn, viewer_id, i).contact}


def _q_devices_here(conn: sqlite3.Connection, device_ids: list[int]) -> set[int]:
    here: set[int] = set()
    for chunk in chunks(sorted(set(device_ids))):
        here.update(r[0] for r in conn.execute(
            f"SELECT id FROM sessions WHERE id IN ({marks(chunk)})", chunk))
    return here


def _q_keys_for(conn: sqlite3.Connection, asker_id: int, user_ids: list[int],
                limit: int) -> list[DeviceKeys]:
    return _q_query(conn, sorted(reachable(conn, asker_id, user_ids)))[:limit]


def _tx_claim_for(conn: sqlite3.Connection, asker_id: int, asker_device: int,
                  device_ids: list[int]) -> list[tuple[ClaimedKey, int]]:
    return _tx_claim(conn, asker_id, asker_device, device_ids, reachable)


def _tx_send_envelopes_across(conn: sqlite3.Connection, sender_id: int, sender_session: int,
                              local: list[Envelope], remote: list[tuple[str, Envelope]],
                              now: float) -> Delivered:
    """The local envelopes into their inboxes, the others into the outbox, all or none."""
    delivered = _tx_send_envelopes(conn, sender_id, sender_session, local, now) if local else []
    for region, envelope in remote:
        # the recipient column names the device: its owner is known in its region only
        enqueue(conn, region, "envelope", sender_id, envelope.device_id, 0, "", now,
                {"sender_device": sender_session, "device_id": envelope.device_id,
                 "ciphertext_type": envelope.type, "ciphertext": envelope.ciphertext})
    return delivered


def _tx_apply_envelope(conn: sqlite3.Connection, cross: CrossEnvelope, seq: int,
                       now: float) -> tuple[str, Delivered]:
    """Item ``seq`` of ``cross.origin``'s stream into its device's inbox if it is the next
    one; NotFound (DEVICE_NOT_FOUND: skipped) if the sender may not reach that device here."""
    verdict = _advance(conn, cross.origin, seq)
    if verdict != "apply":
        return verdict, []
    _tx_remember_remote(conn, cross.sender, cross.origin, now)
    envelope = Envelope(device_id=cross.device_id, type=cross.ciphertext_type,
                        ciphertext=cross.ciphertext)
    return verdict, _tx_send_envelopes(conn, cross.sender.id, cross.sender_device, [envelope],
                                       now)


class SqliteRegionKeys:
    """:class:`.region_api.RegionApi`'s keys part on the shared SQL (both engines)."""

    engine: SqlEngine

    async def devices_here(self, device_ids: list[int]) -> set[int]:
        return await self.engine.read(_q_devices_here, device_ids)

    async def keys_for(self, asker_id: int, user_ids: list[int], limit: int) -> list[DeviceKeys]:
        return await self.engine.read(_q_keys_for, asker_id, user_ids, limit)

    async def claim_keys_for(self, asker_id: int, asker_device: int,
                             device_ids: list[int]) -> list[tuple[ClaimedKey, int]]:
        return await self.engine.write(_tx_claim_for, asker_id, asker_device, device_ids)

    async def send_envelopes_across(self, sender_id: int, sender_session: int,
                                    local: list[Envelope], remote: list[tuple[str, Envelope]],
                                    now: float) -> Delivered:
        return await self.engine.write(_tx_send_envelopes_across, sender_id, sender_session,
                                       local, remote, now)

    async def apply_envelope(self, cross: CrossEnvelope, seq: int,
                             now: float) -> tuple[str, Delivered]:
        return await self.engine.write(_tx_apply_envelope, cross, seq, now)

