"""The return pacer (issue 13) on a fake clock: known devices' handshakes are limited in
number; the rest are told their own slot, booked at the measured rate; and the shield
answers such a socket 503 with that slot as its Retry-After."""

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.server.settings import Settings
from pigeon.shield.guard import PROBATION, Shield
from pigeon.shield.pacing import ReturnPacer
from clocks import FakeClock


def test_handshakes_past_the_limit_get_slots_one_after_another(clock):
    pacer = ReturnPacer(max_pending=3, window_max=10.0, rate=100.0, clock=clock)
    assert [pacer.admit() for _ in range(3)] == [0.0, 0.0, 0.0]
    waits = [pacer.admit() for _ in range(5)]
    assert waits == pytest.approx([0.01, 0.02, 0.03, 0.04, 0.05])
    pacer.finished(True)  # one logged in: room for one more, at once
    assert pacer.admit() == 0.0
    assert pacer.admit() == pytest.approx(0.06)  # the queue of slots goes on
    clock.advance(1.0)  # slots in the past are not handed out again
    assert pacer.admit() == pytest.approx(1 / pacer.rate)
    assert pacer.stats()["deferred"] == 7 and pacer.pending == 3


def test_no_slot_is_further_than_the_window(clock):
    pacer = ReturnPacer(max_pending=1, window_max=2.0, rate=10.0, clock=clock)
    pacer.admit()
    waits = [pacer.admit() for _ in range(50)]
    assert max(waits) == pytest.approx(2.0) and waits[:3] == pytest.approx([0.1, 0.2, 0.3])


def test_the_rate_follows_what_finishes_while_sockets_are_turned_away(clock):
    pacer = ReturnPacer(max_pending=2, window_max=60.0, rate=100.0, min_rate=10.0,
                        clock=clock)
    clock.now = 1000.0
    for _ in range(300):  # a second in which 300 logged in and the pool stayed full
        pacer.admit()
        pacer.admit()
        pacer.finished(True)
    clock.now = 1001.0
    pacer.admit()  # the next second begins: the last one is judged
    assert pacer.rate == pytest.approx(0.5 * 100 + 0.5 * 300)
    # A calm second (nobody turned away) says nothing about capacity.
    for _ in range(5):
        pacer.finished(True)
    clock.now = 1002.0
    pacer.admit()
    assert pacer.rate == pytest.approx(200.0)
    # A full second in which nothing finished: slower, but never under the floor.
    for second in range(1003, 1013):
        clock.now = float(second)
        pacer.admit()
        pacer.admit()
    assert pacer.rate == pytest.approx(10.0, rel=0.2) and pacer.rate >= 10.0


def test_a_socket_closed_before_logging_in_frees_its_place(clock):
    pacer = ReturnPacer(max_pending=1, window_max=5.0, clock=clock)
    assert pacer.admit() == 0.0
    assert pacer.admit() > 0
    pacer.finished(False)
    assert pacer.admit() == 0.0


@given(st.lists(st.sampled_from(["admit", "in", "gone", "tick"]), max_size=300),
       st.integers(1, 8), st.floats(0.0, 30.0))
def test_pending_and_waits_stay_within_bounds(ops, max_pending, window):
    clock = FakeClock()
    pacer = ReturnPacer(max_pending=max_pending, window_max=window, clock=clock)
    for op in ops:
        if op == "admit":
            wait = pacer.admit()
            assert wait == 0.0 or 0.0 < wait <= window + 1e-9
        elif op == "tick":
            clock.advance(0.37)
        else:
            pacer.finished(op == "in")
        assert 0 <= pacer.pending <= max_pending
        assert pacer.rate >= pacer.min_rate


def shield(clock, **overrides) -> Shield:
    settings = dataclasses.replace(Settings(), **overrides)
    return Shield(settings, b"k" * 32, clock=clock, wall_clock=clock)


def test_the_shield_paces_known_addresses_and_says_when_to_come_back(clock):
    s = shield(clock, max_known_handshakes=2, restart_reconnect_rate=4.0)
    s.remember("10.0.0.1")
    first, second = s.accept("10.0.0.1"), s.accept("10.0.0.1")
    assert first is not None and first.ticket is not None and first.ticket.paced
    assert second is not None and second.ticket is not None
    third = s.accept("10.0.0.1")
    assert third is not None and third.ticket is None and third.reason == "paced_return"
    assert third.retry_after == pytest.approx(0.25)
    assert b"Retry-After: 1\r\n" in s.refusal_response(third.reason, third.retry_after)
    fourth = s.accept("10.0.0.1")
    assert fourth is not None and fourth.retry_after == pytest.approx(0.5)
    s.promote(first.ticket)  # logged in: its place is free, and counted once
    s.promote(first.ticket)
    s.release(first.ticket)
    fifth = s.accept("10.0.0.1")
    assert fifth is not None and fifth.ticket is not None
    s.release(second.ticket)  # closed before logging in: free too
    s.release(second.ticket)
    assert s.returns is not None and s.returns.pending == 1
    # Unknown addresses are not paced here (the ration and probation take them).
    s2 = shield(clock, max_known_handshakes=1, accept_rate_unknown="1/1s burst 1")
    assert s2.accept("10.9.9.9") is not None
    assert s2.accept("10.9.9.8") is PROBATION


def test_pacing_is_off_with_zero_or_without_the_shield(clock):
    for s in (shield(clock, max_known_handshakes=0),
              Shield(dataclasses.replace(Settings(), max_known_handshakes=1), b"k" * 32,
                     clock=clock, wall_clock=clock, enabled=False)):
        s.remember("10.0.0.1")
        assert all(d is not None and d.ticket is not None
                   for d in (s.accept("10.0.0.1") for _ in range(5)))


def test_a_device_with_a_call_waiting_comes_in_past_the_pacer_within_its_lane(clock):
    s = shield(clock, max_known_handshakes=1, accept_rate_waiting="2/1s burst 2")
    s.remember("10.0.0.1")
    assert s.accept("10.0.0.1").ticket is not None
    assert s.accept("10.0.0.1").reason == "paced_return"
    idle = b"GET /v1/ws HTTP/1.1\r\nHost: x\r\n\r\n"
    waiting = b"GET /v1/ws?waiting=1 HTTP/1.1\r\nHost: x\r\n\r\n"
    assert s.admit_waiting("10.0.0.1", idle) is None  # told its slot
    let_in = [s.admit_waiting("10.0.0.1", waiting) for _ in range(3)]
    assert [d is not None and d.ticket is not None for d in let_in] == [True, True, False]
    clock.advance(0.5)
    assert s.admit_waiting("10.0.0.1", waiting) is not None  # the lane refills



def test_the_shields_pacer_never_slots_slower_than_the_restart_rate(clock):
    """A second in which nothing finished (a stall) does not slow the slots under the rate
    a restart's window assumes: measured, a floor under it left the herd's last device 33 s
    behind the server's return instead of 22 (docs/shield.md)."""
    s = shield(clock, max_known_handshakes=1, restart_reconnect_rate=8.0)
    pacer = s.returns
    assert pacer is not None and pacer.rate == 8.0 and pacer.min_rate == 8.0
    s.remember("10.0.0.1")
    for _ in range(3):  # a full pool turns sockets away; nothing finishes for seconds
        s.accept("10.0.0.1")
        s.accept("10.0.0.1")
        clock.advance(1.0)
    assert s.accept("10.0.0.1").retry_after <= 1 / 8.0 * 10
    assert pacer.rate == 8.0
