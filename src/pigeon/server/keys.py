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

from . import region_keys
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
    link = caller.services.regions
    if link is not None:  # people homed elsewhere: asked of their regions
        here, away = region_keys.split(link, list(p.user_ids))
        if away:
            return [*await query_here(caller, here),
                    *await region_keys.query(link, caller.user_id,
                                             [i for ids in away.values() for i in ids])]
    return await query_here(caller, list(p.user_ids))


async def query_here(caller: Caller, user_ids: list[int]) -> list[DeviceKeys]:
    if not user_ids:
        return []
    store = caller.services.store
    seen = await store.visible_users(caller.user_id, user_ids)
    return await store.query_keys([user.id for user in seen])


async def claim(caller: Caller, p: m.ClaimKeys) -> list[ClaimedKey]:
    services, link = caller.services, caller.services.regions
    here, remote = list(p.device_ids), []
    if link is not None:  # devices homed elsewhere: claimed there, atomically
        here, away = region_keys.split(link, here)
        if away:
            own, away = await region_keys.settle(link, away)
            here += own
        if away:
            remote = await region_keys.claim(link, caller.user_id, caller.session_id,
                                             [i for ids in away.values() for i in ids])
    claimed = await services.store.claim_keys(caller.user_id, caller.session_id,
                                              here) if here else []
    for key, left in claimed:
        if rules.runs_low(left):  # told now if online; told by keys.upload's answer if not
            services.bus.publish(device_stream(key.device_id), KeysLow(pts=0, one_time_keys=left))
    return [key for key, _ in claimed] + remote


async def send(caller: Caller, p: m.SendEnvelopes) -> Affected:
    services, link = caller.services, caller.services.regions
    here, away = list(p.envelopes), []
    if link is not None:
        here, away = region_keys.route(link, here)
        if away:
            own, _ = await region_keys.settle(link, {"": [e.device_id for _, e in away]})
            here += [e for _, e in away if e.device_id in own]
            away = [(r, e) for r, e in away if e.device_id not in own]
    if link is not None and away:  # devices homed elsewhere: the outbox, in one transaction
        delivered = await services.store.send_envelopes_across(
            caller.user_id, caller.session_id, here, away, services.clock())
        link.kick()
    else:
        delivered = await services.store.send_envelopes(
            caller.user_id, caller.session_id, here, services.clock())
    for device_id, item in delivered:
        services.bus.publish(device_stream(device_id), item)
    # a queued envelope counts as sent: it is durable and will reach its region once
    return Affected(count=len(delivered) + len(away))


HANDLERS = {
    "keys.upload": upload,
    "keys.query": query,
    "keys.claim": claim,
    "envelopes.send": send,
}
