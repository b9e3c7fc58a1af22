"""The shield's login path on a fake clock: proof settled before the queue, the credit one
solution buys, the SMS budgets, in-app limits, and tickets at accept."""

import dataclasses

import pytest

from pigeon.protocol.errors import ProofOfWorkRequired, RateLimited
from pigeon.protocol.types import PowSolution
from pigeon.server.settings import Settings
from pigeon.shield.guard import PROBATION, Shield
from pigeon.shield.pow import solve
from pigeon.shield.scheduler import WorkClass
from pigeon.shield.ticket import format_ticket


def shield(clock, **overrides) -> Shield:
    settings = dataclasses.replace(Settings(), **overrides)
    return Shield(settings, b"k" * 32, clock=clock, wall_clock=clock)


def solved(s: Shield) -> PowSolution:
    token, bits, _ = s.challenge()
    return PowSolution(token=token, nonce=solve(token, bits))


def test_calls_without_work_are_refused_before_the_queue_only_under_load(clock):
    s = shield(clock, pow_priority_bits=8)
    assert s.prove("auth.send_code", None, None) == (False, None)  # calm: nothing asked
    s.difficulty.bits = 4
    with pytest.raises(ProofOfWorkRequired) as err:
        s.prove("auth.send_code", None, None)
    assert err.value.code == "POW_REQUIRED"
    assert s.prove("auth.challenge", None, None) == (False, None)  # never needs work


def test_one_solution_covers_a_sign_up_on_its_connection(clock):
    s = shield(clock, pow_priority_bits=8, pow_calls_per_proof=3)
    s.difficulty.bits = 4
    proven, credit = s.prove("auth.send_code", solved(s), None)
    assert proven and credit.calls == 2
    assert s.classify("auth.send_code", False, proven) == WorkClass.PROVEN
    assert s.prove("auth.sign_in", None, credit)[0]
    assert s.prove("auth.sign_in", None, credit)[0]
    with pytest.raises(ProofOfWorkRequired):
        s.prove("auth.sign_in", None, credit)  # used up
    _, fresh = s.prove("auth.send_code", solved(s), None)
    clock.advance(61)  # a credit lasts as long as its challenge
    with pytest.raises(ProofOfWorkRequired):
        s.prove("auth.send_code", None, fresh)


def test_sms_budget_keeps_a_share_for_solved_work(clock):
    s = shield(clock, code_rate_country="8/1m burst 8", code_rate_global="100/1m burst 100",
               code_budget_open=0.25, code_rate_phone="100/1h burst 100")
    numbers = (f"+4915112345{i:03d}" for i in range(100))
    for _ in range(2):
        s.logins.check_sms(next(numbers), 49, proven=False)
    with pytest.raises(ProofOfWorkRequired):  # the open share (2 of 8) is spent
        s.logins.check_sms(next(numbers), 49, proven=False)
    s.logins.check_sms(next(numbers), 44, proven=False)  # another country's is not
    for _ in range(6):
        s.logins.check_sms(next(numbers), 49, proven=True)
    with pytest.raises(RateLimited):  # and now all of it
        s.logins.check_sms(next(numbers), 49, proven=True)


def test_a_refused_budget_does_not_spend_the_number(clock):
    s = shield(clock, code_rate_country="1/1h burst 1", code_budget_open=1,
               code_rate_phone="5/1h burst 1")
    s.logins.check_sms("+4915112345678", 49, proven=True)
    with pytest.raises(RateLimited):
        s.logins.check_sms("+4915112345679", 49, proven=True)  # the country's budget
    clock.advance(3600)
    s.logins.check_sms("+4915112345679", 49, proven=True)  # its number was not spent


def test_in_app_codes_are_limited_per_number_and_network(clock):
    s = shield(clock, code_rate_app="5/1h burst 2", code_rate_app_phone="20/1h burst 5")
    number = "+4915112345678"
    for _ in range(2):
        s.logins.check_app(number, "10.0.0.1")
    with pytest.raises(RateLimited):
        s.logins.check_app(number, "10.0.0.2")  # same /24: same budget
    s.logins.check_app(number, "10.0.1.1")  # another network still gets through
    s.logins.check_app(number, "10.0.2.1")
    s.logins.check_app(number, "10.0.3.1")
    with pytest.raises(RateLimited):
        s.logins.check_app(number, "10.0.4.1")  # the looser limit per number


def test_rationed_sockets_get_in_with_a_ticket(clock):
    s = shield(clock, accept_rate_unknown="1/1m burst 1", pow_priority_bits=8)
    assert s.accept("10.0.0.1").ticket is not None
    assert s.accept("10.0.0.2") is PROBATION
    assert s.admit_ticket("10.0.0.2", b"GET /v1/ws HTTP/1.1\r\n") == (None, None)
    assert s.challenge_response().startswith(b"HTTP/1.1 503")
    token, bits, _ = s.challenge()
    head = f"GET /v1/ws?pow={format_ticket(token, solve(token, bits))} HTTP/1.1\r\n".encode()
    decision, credit = s.admit_ticket("10.0.0.2", head)
    assert decision.ticket is not None and credit.calls == 3
    assert s.admit_ticket("10.0.0.3", head) == (None, None)  # single use
    s.remember("10.0.0.4")
    assert s.accept("10.0.0.4").ticket is not None  # known addresses are not rationed


def test_probation_is_bounded_and_spares_the_young(clock):
    s = shield(clock, max_probation=2, probation_wait=2.0)
    assert s.hold("a") == (True, None)
    clock.advance(0.1)
    assert s.hold("b") == (True, None)
    # Full, and the oldest has waited less than a quarter of probation_wait: a burst of
    # new sockets must not evict the sockets accepted just before it.
    assert s.hold("c") == (False, None)
    clock.advance(0.45)
    assert s.hold("c") == (True, "a")  # now the oldest has had its chance
    s.unhold("b")
    assert list(s.probation) == ["c"]


async def test_learned_baselines_survive_a_restart(clock, tmp_path):
    s = shield(clock, data=tmp_path, code_rate_country="10/1m burst 10", code_budget_open=1,
               code_budget_halflife=600, code_rate_phone="1000/1h burst 1000")
    await s.start()
    for minute in range(30):
        for i in range(10):
            s.logins.check_sms(f"+44791112{minute:02d}{i:02d}", 44, proven=True)
        clock.advance(60)
    learned = s.logins.budgets["country"].per_minute("44")
    assert learned > 10
    await s.stop()
    assert (tmp_path / "code-budgets.json").stat().st_mode & 0o777 == 0o600
    again = shield(clock, data=tmp_path, code_rate_country="10/1m burst 10",
                   code_budget_halflife=600)
    await again.start()
    assert again.logins.budgets["country"].per_minute("44") == pytest.approx(learned)
    await again.stop()


def test_random_early_drop_spares_newcomers_who_solved_work():
    """A newcomer stays unauthenticated for a code and a sign-in; with solved work it is
    passed over when the full pool must drop someone, while its work is fresh."""
    import random

    from pigeon.shield.admission import Admission

    adm = Admission(max_per_address=10, max_per_prefix=10**6, max_unauthenticated=20,
                    rng=random.Random(7))
    newcomers = [adm.admit(f"10.1.{i}.1", now=0).ticket for i in range(5)]
    for t in newcomers:
        t.protected_until = 100.0
    for i in range(15):
        adm.admit(f"10.2.{i}.1", now=0)
    evicted = [adm.admit(f"10.3.{i}.1", now=50).evict for i in range(200)]
    assert not any(e in newcomers for e in evicted)
    assert all(t.open for t in newcomers)
    later = [adm.admit(f"10.4.{i}.1", now=150).evict for i in range(200)]
    assert any(e in newcomers for e in later)  # fresh work only
