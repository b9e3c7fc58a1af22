"""The SAS verification state machine (crypto/sas.py), both sides in memory: the happy path,
a mismatch, cancels, timeouts, replayed and out-of-order steps, a device that holds another
key than the server gave; and the Verification payload parser under hypothesis."""

from __future__ import annotations

import msgspec
import pytest
import vodozemac
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pigeon.crypto.payloads import UnknownPayload, Verification, encode_payload, read_payload
from pigeon.crypto.sas import EMOJI, Cancel, Party, SasFlow, State

ALICE = Party(1, 10, vodozemac.Account().ed25519_key.to_base64())
BOB = Party(2, 20, vodozemac.Account().ed25519_key.to_base64())
BOB_OTHER = Party(2, 21, vodozemac.Account().ed25519_key.to_base64())


def exchange_keys(now: float = 0.0) -> tuple[SasFlow, SasFlow]:
    """Both sides up to SHOWING."""
    alice, start = SasFlow.start(ALICE, [BOB], now=now)
    bob, accept = SasFlow.respond(BOB, ALICE, start, now=now)
    (alice_key,) = alice.receive(BOB, accept, now)
    (bob_key,) = bob.receive(ALICE, alice_key, now)
    assert alice.receive(BOB, bob_key, now) == []
    assert alice.state is bob.state is State.SHOWING
    return alice, bob


def test_both_sides_see_the_same_seven_emoji_and_verify_each_other():
    alice, bob = exchange_keys()
    assert alice.short_code == bob.short_code and alice.short_code is not None
    assert len(alice.short_code.emoji) == 7 and all(0 <= i < len(EMOJI) == 64
                                                    for i in alice.short_code.emoji)
    assert all(1000 <= n <= 9191 for n in alice.short_code.decimals)
    (alice_mac,) = alice.confirm(1)
    assert bob.receive(ALICE, alice_mac, 1) == []  # held until Bob's person answers
    bob_mac, bob_done = bob.confirm(2)
    assert bob.state is State.VERIFIED and bob_done.step == "done"
    assert [s.step for s in alice.receive(BOB, bob_mac, 2)] == ["done"]
    assert alice.state is State.VERIFIED and alice.peer == BOB and bob.peer == ALICE
    assert alice.receive(BOB, bob_done, 3) == []


def test_each_verification_shows_other_emoji():
    codes = {exchange_keys()[0].short_code for _ in range(3)}
    assert len(codes) == 3


def test_a_person_who_says_no_cancels_both_sides():
    alice, bob = exchange_keys()
    (cancel,) = bob.reject()
    assert cancel.step == "cancel" and cancel.code == Cancel.MISMATCHED_SAS.value
    assert alice.receive(BOB, cancel, 1) == []
    assert alice.state is State.CANCELLED and alice.cancelled_by_peer
    assert alice.cancel_code is Cancel.MISMATCHED_SAS
    with pytest.raises(ValueError):
        alice.confirm(2)


def test_a_device_holding_another_key_than_the_server_gave_fails_the_mac():
    """The server handed Alice a key of its own for Bob's device: the MAC catches it."""
    forged = Party(BOB.user_id, BOB.device_id, vodozemac.Account().ed25519_key.to_base64())
    alice, start = SasFlow.start(ALICE, [forged], now=0)
    bob, accept = SasFlow.respond(BOB, ALICE, start, now=0)
    (alice_key,) = alice.receive(forged, accept, 0)
    (bob_key,) = bob.receive(ALICE, alice_key, 0)
    alice.receive(forged, bob_key, 0)
    alice.confirm(1)
    bob_mac = bob.confirm(1)[0]
    (cancel,) = alice.receive(forged, bob_mac, 1)
    assert cancel.code == Cancel.KEY_MISMATCH.value and alice.state is State.CANCELLED


def test_a_key_that_does_not_match_its_commitment_cancels():
    alice, start = SasFlow.start(ALICE, [BOB], now=0)
    bob, accept = SasFlow.respond(BOB, ALICE, start, now=0)
    (alice_key,) = alice.receive(BOB, accept, 0)
    other = vodozemac.Sas().public_key.to_base64()  # a key chosen after seeing Alice's
    swapped = Verification(transaction_id=start.transaction_id, step="key", key=other)
    (cancel,) = alice.receive(BOB, swapped, 0)
    assert cancel.code == Cancel.KEY_MISMATCH.value and "commitment" in alice.cancel_reason


def test_replayed_steps_are_ignored_and_out_of_order_ones_cancel():
    alice, start = SasFlow.start(ALICE, [BOB], now=0)
    bob, accept = SasFlow.respond(BOB, ALICE, start, now=0)
    (alice_key,) = alice.receive(BOB, accept, 0)
    assert alice.receive(BOB, accept, 0) == []  # the same accept again: nothing changes
    (bob_key,) = bob.receive(ALICE, alice_key, 0)
    assert bob.receive(ALICE, alice_key, 0) == []
    alice.receive(BOB, bob_key, 0)
    # A step that does not fit the state: a second, different accept.
    again = Verification(transaction_id=start.transaction_id, step="accept",
                         commitment="AAAA")
    (cancel,) = alice.receive(BOB, again, 0)
    assert cancel.code == Cancel.UNEXPECTED.value and alice.state is State.CANCELLED


def test_a_mac_before_the_keys_cancels_and_an_unknown_step_is_ignored():
    alice, start = SasFlow.start(ALICE, [BOB], now=0)
    future = Verification(transaction_id=start.transaction_id, step="m.qr.scan")
    assert alice.receive(BOB, future, 0) == [] and alice.state is State.STARTED
    early = Verification(transaction_id=start.transaction_id, step="mac", mac="AAAA",
                         keys_mac="AAAA")
    (cancel,) = alice.receive(BOB, early, 0)
    assert cancel.code == Cancel.UNEXPECTED.value


def test_steps_of_other_transactions_or_devices_are_ignored():
    alice, start = SasFlow.start(ALICE, [BOB], now=0)
    bob, accept = SasFlow.respond(BOB, ALICE, start, now=0)
    stranger = Party(3, 30, BOB.ed25519)
    assert alice.receive(stranger, accept, 0) == []
    wrong_key = Party(BOB.user_id, BOB.device_id, ALICE.ed25519)
    assert alice.receive(wrong_key, accept, 0) == []
    other_txn = Verification(transaction_id="another-transaction", step="accept",
                             commitment="AAAA")
    assert alice.receive(BOB, other_txn, 0) == [] and alice.state is State.STARTED
    cancel = Verification(transaction_id=start.transaction_id, step="cancel", code="user")
    assert alice.receive(stranger, cancel, 0) == [] and alice.state is State.STARTED


def test_the_first_of_several_devices_to_accept_is_the_peer():
    alice, start = SasFlow.start(ALICE, [BOB, BOB_OTHER], now=0)
    assert alice.peer is None
    _, accept = SasFlow.respond(BOB_OTHER, ALICE, start, now=0)
    assert len(alice.receive(BOB_OTHER, accept, 0)) == 1 and alice.peer == BOB_OTHER
    _, late = SasFlow.respond(BOB, ALICE, start, now=0)
    assert alice.receive(BOB, late, 0) == []


def test_a_peer_cancel_with_an_unknown_code_is_kept_as_it_is():
    alice, start = SasFlow.start(ALICE, [BOB], now=0)
    cancel = Verification(transaction_id=start.transaction_id, step="cancel",
                          code="m.future", reason="why not")
    alice.receive(BOB, cancel, 0)
    assert alice.cancel_code == "m.future" and alice.cancel_reason == "why not"


def test_timeout_with_an_injected_clock():
    alice, start = SasFlow.start(ALICE, [BOB], now=100, timeout=60)
    assert not alice.expire(159.9)
    assert alice.expire(160) and alice.cancel_code is Cancel.TIMEOUT
    assert not alice.expire(1000)  # once
    _, accept = SasFlow.respond(BOB, ALICE, start, now=100)
    assert alice.receive(BOB, accept, 161) == []  # over: late steps change nothing
    alice2, bob2 = exchange_keys(now=0)
    (cancel,) = alice2.confirm(10**6)  # the person answered too late
    assert cancel.code == Cancel.TIMEOUT.value


def test_a_cancel_by_this_side_is_sent_once():
    alice, _ = exchange_keys()
    assert [s.code for s in alice.cancel(Cancel.USER, "bye")] == ["user"]
    assert alice.cancel(Cancel.USER, "bye") == []


# -- the payload parser ----------------------------------------------------------------------
def test_verification_round_trips_and_bad_fields_are_malformed():
    step = Verification(transaction_id="abcdefgh", step="mac", mac="QUJD", keys_mac="REVG")
    assert read_payload(encode_payload(step)) == step
    for bad in ({"transaction_id": "short", "step": "start"},
                {"transaction_id": "abcdefgh", "step": ""},
                {"transaction_id": "abcdefgh", "step": "key", "key": "not base64!"},
                {"transaction_id": "abcd\nefgh", "step": "start"},
                {"transaction_id": "abcdefgh", "step": "cancel", "reason": "x" * 300}):
        read = read_payload(msgspec.msgpack.encode({"p": "sas", **bad}))
        assert isinstance(read, UnknownPayload) and read.tag == "sas" and "malformed" in read.error


fields = st.one_of(st.none(), st.text(max_size=80), st.integers(-2**63, 2**63),
                   st.binary(max_size=40))


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.dictionaries(st.sampled_from(["transaction_id", "step", "commitment", "key", "mac",
                                        "keys_mac", "code", "reason", "extra"]), fields))
def test_any_verification_shaped_input_is_read_or_skipped_never_raises(obj):
    read = read_payload(msgspec.msgpack.encode({"p": "sas", **obj}))
    assert isinstance(read, (Verification, UnknownPayload))
    if isinstance(read, Verification):
        assert 8 <= len(read.transaction_id) <= 64 and 1 <= len(read.step) <= 16


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=50)
@given(st.builds(Verification, transaction_id=st.from_regex(r"[A-Za-z0-9_-]{8,64}",
                                                            fullmatch=True),
                 step=st.sampled_from(["start", "accept", "key", "mac", "cancel", "done", "zz"]),
                 key=st.none() | st.from_regex(r"[A-Za-z0-9+/]{1,64}", fullmatch=True),
                 reason=st.text(max_size=256)))
def test_any_step_fed_to_a_flow_never_raises(step):
    alice, start = SasFlow.start(ALICE, [BOB], now=0)
    step = msgspec.structs.replace(step, transaction_id=start.transaction_id)
    out = alice.receive(BOB, step, 0)
    assert all(isinstance(s, Verification) for s in out)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=60)
@given(st.data())
def test_duplicated_and_reordered_delivery_never_verifies_a_mismatch(data):
    """Two honest sides whose steps are delivered duplicated and in any order: each side
    ends verified, or cancelled, or still waiting; never verified while the other cancelled
    for a key mismatch, and both verified means the same code. In order, with duplicates,
    both verify."""
    in_order = data.draw(st.booleans(), label="in order")
    alice, start = SasFlow.start(ALICE, [BOB], now=0)
    bob, accept = SasFlow.respond(BOB, ALICE, start, now=0)
    queues = {"alice": [accept], "bob": []}  # steps waiting for delivery to each side
    flows = {"alice": (alice, BOB, "bob"), "bob": (bob, ALICE, "alice")}
    for _ in range(40):
        waiting = [name for name in queues if queues[name]]
        showing = [n for n, (f, _, _) in flows.items() if f.state is State.SHOWING]
        if not waiting and not showing:
            break
        if showing and (not waiting or data.draw(st.booleans(), label="confirm now")):
            name = showing[0]
            flow, _, other = flows[name]
            queues[other] += flow.confirm(1)
            continue
        name = waiting[0] if in_order else data.draw(st.sampled_from(waiting), label="to")
        index = 0 if in_order else data.draw(
            st.integers(0, len(queues[name]) - 1), label="which")
        step = queues[name].pop(index)
        flow, sender, other = flows[name]
        queues[other] += flow.receive(sender, step, 1)
        if data.draw(st.booleans(), label="duplicate"):  # delivered twice: a replay
            assert flow.receive(sender, step, 1) == []
    if alice.state is State.VERIFIED and bob.state is State.VERIFIED:
        assert alice.short_code == bob.short_code
    for flow in (alice, bob):
        if flow.state is State.VERIFIED:
            assert flow.cancel_code is None
        assert flow.cancel_code is not Cancel.KEY_MISMATCH  # honest keys always check out
    if in_order:
        assert alice.state is bob.state is State.VERIFIED
