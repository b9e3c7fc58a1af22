"""The fan-out budget and the size-priced listings (issue 7, findings 6 and 7), fake clock."""

from dataclasses import replace

import pytest

from pigeon.protocol import methods as m
from pigeon.protocol.errors import RateLimited
from pigeon.server.settings import Settings
from pigeon.shield.guard import Shield
from pigeon.shield.ratelimit import KeyedLimiter, Rate


def shield(clock, **settings) -> Shield:
    return Shield(replace(Settings(), **settings), b"k" * 32, clock=clock, wall_clock=clock)


def test_charge_goes_into_debt_and_gives_back(clock):
    limiter = KeyedLimiter(Rate.parse("10/1s burst 20"), clock=clock)
    limiter.charge("a", 50)  # 20 - 50: 30 in debt
    assert limiter.take("a") == pytest.approx(3.1)
    limiter.charge("a", -100)  # a refund never lifts a bucket over its burst
    assert [limiter.take("a") for _ in range(20)] == [0.0] * 20
    assert limiter.take("a") > 0


def test_a_big_group_costs_its_size_and_refuses_before_the_store(clock):
    guard = shield(clock, rate_fanout="100/1s burst 1000")
    taken = guard.reserve_fanout(1, 7)  # size unknown: one token now ...
    assert taken == 1
    guard.charge_fanout(1, taken, 800, chat_id=7, chat_size=800)  # ... the rest after
    with pytest.raises(RateLimited) as refused:
        guard.reserve_fanout(1, 7)  # 200 left, the chat costs 800
    assert refused.value.retry_after == pytest.approx(6.0)
    guard.reserve_fanout(2, 7)  # another account has its own budget
    guard.reserve_fanout(1, 8)  # and a small chat still fits
    clock.advance(6.1)  # the small chat took one more
    assert guard.reserve_fanout(1, 7) == 800


def test_a_chat_bigger_than_the_burst_needs_a_full_bucket_then_debt(clock):
    guard = shield(clock, rate_fanout="100/1s burst 1000")
    guard.remember_chat_size(9, 5000)
    taken = guard.reserve_fanout(1, 9)
    assert taken == 1000
    guard.charge_fanout(1, taken, 5000)
    clock.advance(39.0)
    with pytest.raises(RateLimited):
        guard.reserve_fanout(1, 9)
    clock.advance(11.0)
    guard.reserve_fanout(1, 9)


def test_off_means_no_budget(clock):
    guard = Shield(replace(Settings(), rate_fanout="1/1h burst 1"), b"k" * 32, enabled=False,
                   clock=clock)
    guard.remember_chat_size(1, 10**6)
    for _ in range(3):
        guard.charge_fanout(1, guard.reserve_fanout(1, 1), 10**6)


def test_listings_cost_by_page_size():
    assert Shield.call_cost("chats.list", m.ListChats()) == 10
    assert Shield.call_cost("chats.list", m.ListChats(limit=5)) == 1
    assert Shield.call_cost("chats.members", m.ListMembers(chat_id=1, limit=50)) == 5
    assert Shield.call_cost("messages.send", m.SendMessage(chat_id=1, random_id=1, text="x")) == 1
