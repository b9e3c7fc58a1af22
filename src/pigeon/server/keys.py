"""Device keys and device-to-device envelopes (issue 9, deliverables 1 and 2).

The server holds public keys only and checks every signature it is given with vodozemac
(it writes no crypto of its own), in a worker thread: a hundred verifications are a few
milliseconds the event loop does not wait for. Envelopes are opaque bytes: stored once per
target device in its inbox (``device:<id>``), pushed to it if it is online, deleted when it
acknowledges them (``updates.ack_stream``) or after ``device_inbox_retention``.
"""

from __future__ import annotations

import asyncio

from pigeon.crypto import signatures
from pigeon.domain import keys as rules
from pigeon.domain.streams import device_stream
from pigeon.protocol import methods as m
from pigeon.protocol.keys import (
    ClaimedKey,
    DeviceKeys,
    KeyCounts,
    identity_signed,
    key_signed,
)
from pigeon.protocol.types import Affected
from pigeon.protocol.updates import KeysLow

from .services import Caller


def _counts(held: rules.Held) -> KeyCounts:
    return KeyCounts(one_time_keys=held.one_time_keys, low=rules.LOW_ONE_TIME_KEYS,
                     wanted=rules.WANTED_ONE_TIME_KEYS, fallback=held.fallback,
                     identity=held.identity is not None)


async def upload(caller: Caller, p: m.UploadKeys) -> KeyCounts:
    store, user_id, device = caller.services.store, caller.user_id, caller.session_id
    if p.identity is None and not p.one_time_keys and p.fallback_key is None:
        return _counts(await store.keys_held(device))
    signed: list[tuple[bytes, str]] = []
    if p.identity is not None:
        ed25519 = p.identity.ed25519
        signed.append((identity_signed(user_id, device, p.identity.curve25519, ed25519),
                       p.identity.signature))
    else:
        held = await store.device_identity(device)
        rules.require_identity(rules.Held(held, 0, False))
        assert held is not None
        ed25519 = held[1]
    signed += [(key_signed(device, "otk", k.key_id, k.key), k.signature)
               for k in p.one_time_keys]
    if p.fallback_key is not None:
        k = p.fallback_key
        signed.append((key_signed(device, "fallback", k.key_id, k.key), k.signature))
    await asyncio.to_thread(signatures.verify, ed25519, signed)
    return _counts(await store.upload_keys(user_id, device, ed25519, p.identity,
                                           list(p.one_time_keys), p.fallback_key))


async def query(caller: Caller, p: m.QueryKeys) -> list[DeviceKeys]:
    """Users the caller may not see are left out, exactly as users without devices."""
    store = caller.services.store
    seen = await store.visible_users(caller.user_id, list(p.user_ids))
    return await store.query_keys([user.id for user in seen])


async def claim(caller: Caller, p: m.ClaimKeys) -> list[ClaimedKey]:
    services = caller.services
    claimed = await services.store.claim_keys(caller.user_id, caller.session_id,
                                              list(p.device_ids))
    for key, left in claimed:
        if rules.runs_low(left):  # told now if online; told by keys.upload's answer if not
            services.bus.publish(device_stream(key.device_id), KeysLow(pts=0, one_time_keys=left))
    return [key for key, _ in claimed]


async def send(caller: Caller, p: m.SendEnvelopes) -> Affected:
    services = caller.services
    delivered = await services.store.send_envelopes(
        caller.user_id, caller.session_id, list(p.envelopes), services.clock())
    for device_id, item in delivered:
        services.bus.publish(device_stream(device_id), item)
    return Affected(count=len(delivered))


HANDLERS = {
    "keys.upload": upload,
    "keys.query": query,
    "keys.claim": claim,
    "envelopes.send": send,
}
