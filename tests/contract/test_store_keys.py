"""Contract: device keys (public keys only) and envelopes into device inboxes (issue 9).

A one-time key goes to one claimer, however many claim at once; a device's identity keys
never change; a session that ends takes its keys with it; envelopes reach only the sender's
own devices, contacts and chat peers, one copy per device, in order, all or none."""

from __future__ import annotations

import asyncio
import itertools

from contract_support import MAX_MEMBERS, T0, make_users, raises

from pigeon.domain import keys as rules
from pigeon.domain.streams import device_stream
from pigeon.protocol import updates as up
from pigeon.protocol.errors import Conflict, InvalidArgument, NotFound, Unauthorized
from pigeon.protocol.keys import Envelope, IdentityKeys, SignedKey
from pigeon.store import Store

_tokens = itertools.count(1)


def b64(tag: str, n: int = 43) -> str:
    """A string of a public key's shape (the store does not verify: the server did)."""
    return (tag * n)[:n]


def identity(tag: str) -> IdentityKeys:
    return IdentityKeys(curve25519=b64("C" + tag), ed25519=b64("E" + tag), signature=b64("S", 86))


def otks(prefix: str, count: int) -> list[SignedKey]:
    return [SignedKey(key_id=f"{prefix}{i}", key=b64(f"K{prefix}{i}"), signature=b64("S", 86))
            for i in range(count)]


async def device(store: Store, user_id: int, name: str = "phone", *, keys: int = 0,
                 fallback: bool = False) -> int:
    """A session of ``user_id`` that published its identity keys and ``keys`` one-time keys."""
    session = await store.create_session(user_id, next(_tokens).to_bytes(8, "big"), name,
                                         "127.0.0.1", T0)
    ident = identity(str(session.id))
    fallback_key = SignedKey(key_id="fb", key=b64("F"), signature=b64("S", 86))
    await store.upload_keys(user_id, session.id, ident.ed25519, ident,
                            otks(f"d{session.id}-", keys), fallback_key if fallback else None)
    return session.id


async def acquainted(store: Store, a: int, b: int) -> None:
    """``a`` and ``b`` in a group together: each may see and reach the other."""
    await store.create_group(a, "g", [b], T0, MAX_MEMBERS)


# -- upload -------------------------------------------------------------------------------------
async def test_upload_counts_and_identity_never_changes(store: Store) -> None:
    (alice,) = await make_users(store, 1)
    session = await store.create_session(alice, b"t-a", "phone", "127.0.0.1", T0)
    ident = identity("a")
    with raises(InvalidArgument, "IDENTITY_KEYS_MISSING"):
        await store.upload_keys(alice, session.id, ident.ed25519, None, otks("x", 1), None)
    held = await store.upload_keys(alice, session.id, ident.ed25519, ident, otks("x", 5), None)
    assert held == rules.Held((ident.curve25519, ident.ed25519), 5, False)
    # The same identity again (a resent call) and the same keys again are kept once.
    held = await store.upload_keys(alice, session.id, ident.ed25519, ident, otks("x", 7), None)
    assert held.one_time_keys == 7
    with raises(Conflict, "IDENTITY_KEYS_CHANGED"):
        await store.upload_keys(alice, session.id, identity("b").ed25519, identity("b"), [], None)
    with raises(Conflict, "IDENTITY_KEYS_CHANGED"):  # keys verified with another Ed25519 key
        await store.upload_keys(alice, session.id, identity("b").ed25519, None, otks("y", 1),
                                None)
    assert await store.device_identity(session.id) == (ident.curve25519, ident.ed25519)


async def test_one_time_keys_held_per_device_are_bounded(store: Store) -> None:
    (alice,) = await make_users(store, 1)
    session = await device(store, alice, keys=rules.MAX_STORED_ONE_TIME_KEYS - 1)
    ident = identity(str(session))
    with raises(InvalidArgument, "TOO_MANY_KEYS"):
        await store.upload_keys(alice, session, ident.ed25519, None, otks("more", 2), None)
    held = await store.upload_keys(alice, session, ident.ed25519, None, otks("more", 1), None)
    assert held.one_time_keys == rules.MAX_STORED_ONE_TIME_KEYS


async def test_an_ended_session_stores_no_keys(store: Store) -> None:
    (alice,) = await make_users(store, 1)
    session = await store.create_session(alice, b"t-gone", "phone", "127.0.0.1", T0)
    await store.delete_sessions(alice, only=session.id)
    with raises(Unauthorized, "SESSION_INVALID"):
        await store.upload_keys(alice, session.id, identity("g").ed25519, identity("g"), [], None)


# -- claim --------------------------------------------------------------------------------------
async def test_concurrent_claims_never_hand_out_a_key_twice(store: Store) -> None:
    bob, *claimers = await make_users(store, 6)
    target = await device(store, bob, keys=30, fallback=True)
    devices = []
    for claimer in claimers:
        await acquainted(store, claimer, bob)
        devices += [await device(store, claimer, f"d{i}") for i in range(12)]
    results = await asyncio.gather(*(
        store.claim_keys(claimers[i % len(claimers)], d, [target])
        for i, d in enumerate(devices)))
    keys = [claimed for result in results for claimed, _ in result]
    assert len(keys) == len(devices)  # everybody got a key ...
    one_time = [k.key.key_id for k in keys if not k.fallback]
    assert len(one_time) == 30 and len(set(one_time)) == 30  # ... each one-time key once
    assert all(k.key.key_id == "fb" for k in keys if k.fallback)  # the rest: the fallback
    assert (await store.keys_held(target)).one_time_keys == 0


async def test_claim_reports_what_is_left_and_leaves_out_whom_one_may_not_see(
        store: Store) -> None:
    alice, bob, stranger = await make_users(store, 3)
    await acquainted(store, alice, bob)
    bobs = await device(store, bob, keys=3)
    keyless = await store.create_session(bob, b"t-keyless", "laptop", "127.0.0.1", T0)
    mine = await device(store, alice, keys=2)
    strangers = await device(store, stranger, keys=2)
    claimed = await store.claim_keys(alice, mine, [bobs, keyless.id, strangers, mine, 10**9])
    assert [(k.device_id, k.user_id, left) for k, left in claimed] == [(bobs, bob, 2)]
    assert claimed[0][0].identity == identity(str(bobs))
    assert (await store.keys_held(strangers)).one_time_keys == 2  # the stranger's untouched
    assert (await store.keys_held(mine)).one_time_keys == 2  # and one's own device's


async def test_a_terminated_session_s_keys_are_gone_at_once(store: Store) -> None:
    alice, bob = await make_users(store, 2)
    await acquainted(store, alice, bob)
    mine = await device(store, alice)
    phone = await device(store, bob, "phone", keys=5, fallback=True)
    laptop = await device(store, bob, "laptop", keys=5, fallback=True)
    assert [d.device_id for d in await store.query_keys([bob])] == [phone, laptop]
    assert await store.delete_sessions(bob, only=laptop) == [laptop]
    assert [d.device_id for d in await store.query_keys([bob])] == [phone]
    assert await store.claim_keys(alice, mine, [laptop]) == []
    assert await store.keys_held(laptop) == rules.Held(None, 0, False)
    assert await store.device_identity(laptop) is None


# -- envelopes ----------------------------------------------------------------------------------
def envelope(device_id: int, data: bytes) -> Envelope:
    return Envelope(device_id=device_id, type=1, ciphertext=data)


async def inbox(store: Store, device_id: int) -> list[up.Envelope]:
    page = await store.stream_items(device_stream(device_id), 0, 1000)
    return [up.body_decoder.decode(body) for _, body in page.items]


async def test_envelopes_reach_own_devices_contacts_and_group_peers_in_order(
        store: Store) -> None:
    alice, contact, peer = await make_users(store, 3)
    sender, other = await device(store, alice), await device(store, alice, "laptop")
    private = await store.open_private(contact, alice, T0)
    await store.send_message(contact, private.id, 1, "hi", T0)  # contact wrote to alice
    await acquainted(store, peer, alice)
    theirs, peers = await device(store, contact), await device(store, peer)
    sent = await store.send_envelopes(alice, sender, [
        envelope(other, b"1"), envelope(theirs, b"2"), envelope(peers, b"3"),
        envelope(theirs, b"4")], T0)
    assert [(d, u.pts, u.ciphertext) for d, u in sent] == [
        (other, 1, b"1"), (theirs, 1, b"2"), (peers, 1, b"3"), (theirs, 2, b"4")]
    got = await inbox(store, theirs)
    assert [(u.pts, u.sender_id, u.sender_device, u.type, u.ciphertext) for u in got] == [
        (1, alice, sender, 1, b"2"), (2, alice, sender, 1, b"4")]
    assert await store.ack_stream(device_stream(theirs), 1) == 1
    assert [u.ciphertext for u in await inbox(store, theirs)] == [b"4"]


async def test_envelopes_for_strangers_or_unknown_devices_are_refused_all_or_none(
        store: Store) -> None:
    alice, bob, stranger = await make_users(store, 3)
    await acquainted(store, alice, bob)
    sender, bobs = await device(store, alice), await device(store, bob)
    strangers = await device(store, stranger)
    # Found by username is enough to see someone, not to fill their device's inbox.
    await store.remember_discovery(alice, stranger)
    await store.open_private(alice, stranger, T0)  # opened without their consent
    for target in (strangers, 10**9):
        with raises(NotFound, "DEVICE_NOT_FOUND"):
            await store.send_envelopes(alice, sender, [envelope(bobs, b"x"),
                                                       envelope(target, b"y")], T0)
    assert await inbox(store, bobs) == [] and await inbox(store, strangers) == []


async def test_envelope_bounds(store: Store) -> None:
    alice, bob = await make_users(store, 2)
    await acquainted(store, alice, bob)
    sender, bobs = await device(store, alice), await device(store, bob)
    with raises(InvalidArgument, "INVALID_ARGUMENT"):
        await store.send_envelopes(alice, sender, [envelope(bobs, b"x")] * 1001, T0)
