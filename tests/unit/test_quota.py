"""What one account may hold on a server (server/quota.py), with stand-in connections."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pigeon.protocol.errors import RateLimited
from pigeon.server.quota import AccountQuota
from pigeon.server.settings import Settings

SETTINGS = replace(Settings(), max_connections_per_account=3, max_connections_per_session=2,
                   outbox_bytes_account=1000, bulk_calls_per_account=2)


class Conn:
    """Just what the quota sees of a connection."""

    def __init__(self, quota: AccountQuota, session_id: int, queued: int = 0) -> None:
        self.quota, self.session_id, self.queued_bytes = quota, session_id, queued
        self.user_id: int | None = None
        self.replaced_count = self.woken = self.cut = 0

    def login(self, user_id: int) -> Conn:
        self.quota.admit(self, user_id, self.session_id)
        self.user_id = user_id
        self.quota.join(self, self.queued_bytes)
        return self

    def replaced(self) -> None:
        self.replaced_count += 1
        self.quota.leave(self, self.queued_bytes)
        self.user_id = None

    def wake(self) -> None:
        self.woken += 1

    def slow_consumer(self) -> None:
        self.cut += 1
        self.quota.add_bytes(self.user_id or 0, -self.queued_bytes)
        self.queued_bytes = 0


def test_a_session_keeps_its_newest_connections() -> None:
    quota = AccountQuota(SETTINGS)
    first, second = Conn(quota, 10).login(1), Conn(quota, 10).login(1)
    third = Conn(quota, 10).login(1)
    assert (first.replaced_count, second.replaced_count, third.replaced_count) == (1, 0, 0)
    assert quota.connections(1) == [second, third]


def test_a_full_account_refuses_one_more_and_takes_it_once_a_slot_frees() -> None:
    quota = AccountQuota(SETTINGS)
    conns = [Conn(quota, session).login(1) for session in (10, 11, 12)]
    with pytest.raises(RateLimited) as refused:
        Conn(quota, 13).login(1)
    assert refused.value.code == "TOO_MANY_CONNECTIONS" and refused.value.retry_after
    assert all(c.replaced_count == 0 for c in conns)
    with pytest.raises(RateLimited):
        quota.ensure_room(1, Conn(quota, 13))
    quota.ensure_room(1, conns[0])  # re-login of a connection already counted is fine
    quota.leave(conns[0], 0)
    Conn(quota, 13).login(1)
    Conn(quota, 99).login(2)  # other accounts never notice


def test_bytes_over_the_bound_hold_the_account_until_they_drain() -> None:
    quota = AccountQuota(SETTINGS)
    a, b = Conn(quota, 10).login(1), Conn(quota, 11).login(1)
    quota.add_bytes(1, 600)
    assert not quota.over(1)
    quota.add_bytes(1, 600)
    assert quota.over(1) and not quota.over(2) and not quota.over(None)
    assert not quota.try_bulk(1)  # no heavy work while its devices do not read
    woken = a.woken, b.woken
    quota.add_bytes(1, -300)
    assert not quota.over(1)
    assert (a.woken, b.woken) > woken  # both may be read again
    assert quota.try_bulk(1)


def test_far_over_the_bound_the_worst_hoarder_is_cut() -> None:
    quota = AccountQuota(SETTINGS)
    small, big = Conn(quota, 10, queued=100).login(1), Conn(quota, 11, queued=0).login(1)
    big.queued_bytes = 3950
    quota.add_bytes(1, 3950)  # 4050 > 4 x 1000
    assert (small.cut, big.cut) == (0, 1)
    assert not quota.over(1)


def test_bulk_calls_per_account() -> None:
    quota = AccountQuota(SETTINGS)
    conn = Conn(quota, 10).login(1)
    assert quota.try_bulk(1) and quota.try_bulk(1)
    assert not quota.try_bulk(1)
    woken = conn.woken
    quota.end_bulk(1)
    assert conn.woken > woken
    assert quota.try_bulk(1)


def test_nothing_is_kept_once_the_last_connection_leaves() -> None:
    quota = AccountQuota(SETTINGS)
    conn = Conn(quota, 10, queued=1500).login(1)
    assert quota.over(1)
    quota.leave(conn, conn.queued_bytes)
    assert quota.connections(1) == [] and not quota.over(1)
    assert quota._conns == {} and quota._bytes == {} and quota._bulk == {}  # noqa: SLF001
