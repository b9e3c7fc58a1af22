"""Resumption tickets (issue 13): the codec, and the shield's checks with an injected clock."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pigeon.protocol import closing
from pigeon.protocol.resumption import MAC_SIZE, MAX_TICKET_CHARS, Claims, format_ticket, \
    parse_ticket
from pigeon.shield.resumption import Resumption
from clocks import FakeClock

U64 = st.integers(min_value=0, max_value=2**64 - 1)
TOKEN = "pgn_" + "t" * 43


def resumption(secret: bytes = b"s" * 32, ttl: float = 3600.0, **kw: object) -> Resumption:
    return Resumption(secret, ttl, clock=kw.pop("clock", FakeClock(1_800_000_000.0)), **kw)  # type: ignore[arg-type]


# -- the codec --------------------------------------------------------------------------------
@given(U64, U64, U64, st.binary(min_size=MAC_SIZE, max_size=MAC_SIZE))
def test_a_ticket_reads_back_as_written(session_id, user_id, expires, mac):
    claims = Claims(session_id, user_id, expires)
    text = format_ticket(claims, mac)
    assert len(text) <= MAX_TICKET_CHARS and text.startswith("pgr1.")
    assert parse_ticket(text) == (claims, mac)


@given(st.text(max_size=300))
def test_any_text_is_a_ticket_or_none(text):
    parsed = parse_ticket(text)
    assert parsed is None or (isinstance(parsed[0], Claims) and len(parsed[1]) == MAC_SIZE)


@given(st.from_regex(r"pgr1\.[A-Za-z0-9_-]{60,90}", fullmatch=True))
def test_ticket_shaped_junk_never_raises(text):
    parse_ticket(text)


@given(st.sampled_from(["SHUTTING_DOWN", "BANNED", "SLOW_CONSUMER"]),
       st.none() | st.floats(min_value=0, max_value=3600),
       st.none() | st.floats(min_value=0, max_value=3600))
def test_a_close_reason_reads_back_as_written(code, after, spread):
    text = closing.format_reason(code, after, spread)
    assert len(text.encode()) <= closing.MAX_REASON_BYTES
    reason = closing.parse_reason(text)
    assert reason is not None and reason.code == code
    if after is None:
        assert reason.retry_after is None and reason.retry_spread is None
    else:
        assert reason.retry_after is not None and abs(reason.retry_after - after) <= 0.001
        assert (reason.retry_spread is None) == (spread is None)


@given(st.text(max_size=200))
def test_any_close_reason_parses_or_is_none(text):
    reason = closing.parse_reason(text)
    assert reason is None or (reason.retry_after is None or 0 <= reason.retry_after <= 3600)


def test_close_reasons_of_older_servers_and_proxies():
    assert closing.parse_reason("HELLO_TIMEOUT") == closing.CloseReason("HELLO_TIMEOUT")
    assert closing.parse_reason("") is None
    assert closing.parse_reason("Going away") is None
    assert closing.format_reason("X", float("nan")) == "X"


# -- the shield's checks ----------------------------------------------------------------------
def test_a_live_sessions_ticket_is_valid_until_it_expires():
    clock = FakeClock(1_800_000_000.0)
    r = resumption(clock=clock)
    r.load([(7, 70)])
    ticket = r.issue(7, 70, TOKEN)
    assert r.check(ticket, TOKEN) == (7, 70)
    clock.now += 3599
    assert r.check(ticket, TOKEN) == (7, 70)
    clock.now += 2
    assert r.check(ticket, TOKEN) is None  # expired: the long way
    assert r.stats() == {"live_sessions": 1, "resumed": 2, "declined": 1, "forgotten": 0}


def test_revoked_tampered_foreign_or_wrong_token_is_refused():
    r = resumption()
    r.live(7, 70)
    ticket = r.issue(7, 70, TOKEN)
    assert r.check(ticket, "pgn_" + "u" * 43) is None  # bound to its token
    assert resumption(b"o" * 32).check(ticket, TOKEN) is None  # another server's secret
    claims, mac = parse_ticket(ticket)  # type: ignore[misc]
    for forged in (claims._replace(session_id=8), claims._replace(user_id=71),
                   claims._replace(expires=claims.expires + 10**6)):
        assert r.check(format_ticket(forged, mac), TOKEN) is None
    assert r.check(format_ticket(claims, bytes(MAC_SIZE)), TOKEN) is None
    r.live(8, 71)
    assert r.check(r.issue(8, 70, TOKEN), TOKEN) is None  # the session is someone else's
    r.revoke([7])
    assert r.check(ticket, TOKEN) is None  # revocation wins


def test_the_live_map_is_bounded_and_forgetting_is_safe():
    r = resumption(max_sessions=2)
    r.load([(1, 10), (2, 20), (3, 30)])
    assert len(r) == 2
    r.live(4, 40)  # the oldest goes
    assert len(r) == 2
    assert r.check(r.issue(1, 10, TOKEN), TOKEN) is None
    assert r.check(r.issue(4, 40, TOKEN), TOKEN) == (4, 40)
    empty = resumption(max_sessions=0)
    empty.load([(1, 10)])
    assert len(empty) == 0
    empty.live(2, 20)
    assert len(empty) == 0


class Bus:
    """Whether revocations made in other processes reach this one (a shared bus)."""

    def __init__(self) -> None:
        self.current = True

    def __call__(self) -> bool:
        return self.current


def test_nothing_is_resumed_or_remembered_while_revocations_may_be_missed():
    bus = Bus()
    r = resumption(current=bus)
    r.load([(1, 10)])
    ticket = r.issue(1, 10, TOKEN)
    assert r.check(ticket, TOKEN) == (1, 10)
    bus.current = False  # NATS away: a revocation elsewhere would not reach us
    assert r.check(ticket, TOKEN) is None
    r.live(2, 20)
    r.load([(3, 30)])
    bus.current = True
    assert r.check(r.issue(2, 20, TOKEN), TOKEN) is None
    assert r.check(r.issue(3, 30, TOKEN), TOKEN) is None
    assert r.check(ticket, TOKEN) == (1, 10)  # what was known before is kept ...
    r.forget()  # ... until the bus says it may have missed revocations
    assert r.check(ticket, TOKEN) is None and len(r) == 0
    assert r.stats()["forgotten"] == 1


def test_a_session_read_before_a_forgetting_is_not_remembered():
    """A hello reads its session from the store; if revocations may have been missed while
    it read (the bus dropped, or was not current when it began), the read may predate a
    revocation it will never hear of."""
    bus = Bus()
    r = resumption(current=bus)
    since = r.since()
    r.forget()  # the bus dropped during the read
    r.live(1, 10, since)
    assert r.check(r.issue(1, 10, TOKEN), TOKEN) is None
    bus.current = False
    since = r.since()
    assert since is None
    bus.current = True  # back before the read returned
    r.live(1, 10, since)
    assert r.check(r.issue(1, 10, TOKEN), TOKEN) is None
    r.live(1, 10, r.since())  # read while current throughout
    assert r.check(r.issue(1, 10, TOKEN), TOKEN) == (1, 10)
