import base64
import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pigeon.protocol.errors import ProofOfWorkRequired
from pigeon.shield.pow import DifficultyController, ProofOfWork, solve, work_bits

SECRET = b"s" * 32


def make(clock, bits=8, **kw):
    pow_ = ProofOfWork(SECRET, clock=clock, **kw)
    pow_.difficulty = bits
    return pow_


def expect(code, fn, *args):
    with pytest.raises(ProofOfWorkRequired) as info:
        fn(*args)
    assert info.value.code == code
    return info.value


def test_calm_server_accepts_anything(clock):
    pow_ = ProofOfWork(SECRET, clock=clock)
    assert pow_.difficulty == 0
    pow_.verify(None, None)
    pow_.verify("garbage", 5)
    token, difficulty, expires_in = pow_.challenge()
    assert (difficulty, expires_in) == (0, 60.0)
    assert solve(token, 0) == 0


def test_round_trip(clock):
    pow_ = make(clock, bits=8)
    token, difficulty, _ = pow_.challenge()
    assert difficulty == 8
    assert len(token) <= 256 and base64.urlsafe_b64decode(token + "==")
    nonce = solve(token, difficulty)
    assert work_bits(token, nonce) >= 8
    digest = hashlib.sha256(token.encode() + nonce.to_bytes(8, "big")).digest()
    assert digest[0] == 0  # 8 leading zero bits, checked independently
    pow_.verify(token, nonce)
    assert pow_.stats()["accepted"] == 1


def test_missing_solution_is_required(clock):
    pow_ = make(clock)
    expect("POW_REQUIRED", pow_.verify, None, None)
    token, _, _ = pow_.challenge()
    expect("POW_REQUIRED", pow_.verify, token, None)
    expect("POW_REQUIRED", pow_.verify, None, 1)
    assert pow_.stats()["rejected"]["POW_REQUIRED"] == 3


def test_tokens_are_stateless_across_instances(clock):
    # Another process (or the same one after a restart) with the same secret accepts it.
    token, d, _ = make(clock, bits=6).challenge()
    make(clock, bits=6).verify(token, solve(token, d))


def test_forged_and_malformed_tokens(clock):
    pow_ = make(clock, bits=4)
    token, _, _ = pow_.challenge()
    other, _, _ = ProofOfWork(b"k" * 32, clock=clock).challenge()
    expect("POW_INVALID", pow_.verify, other, solve(other, 4))  # another server's secret
    raw = bytearray(base64.urlsafe_b64decode(token + "=="))
    raw[9] = 0  # claim difficulty 0 without re-signing
    tampered = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    expect("POW_INVALID", pow_.verify, tampered, 0)
    for junk in ["", "!!!!", "a" * 300, token[:-4], token + "AAAA", token + "!"]:
        expect("POW_INVALID", pow_.verify, junk, 0)


def test_non_canonical_spelling_is_refused(clock):
    # base64 decoding skips characters outside its alphabet: a second spelling of the same
    # token must not pass as a new one (it would need its own work, but must not exist).
    pow_ = make(clock, bits=1)
    token, _, _ = pow_.challenge()
    twin = token[:10] + "." + token[10:]
    padded = twin + "=" * (-len(twin) % 4)
    assert base64.urlsafe_b64decode(padded) == base64.urlsafe_b64decode(token)
    expect("POW_INVALID", pow_.verify, twin, solve(twin, 1))
    pow_.verify(token, solve(token, 1))


def test_insufficient_work(clock):
    pow_ = make(clock, bits=12)
    token, d, _ = pow_.challenge()
    bad = next(n for n in range(10_000) if work_bits(token, n) < d)
    e = expect("POW_INVALID", pow_.verify, token, bad)
    assert "nonce" in e.message
    expect("POW_INVALID", pow_.verify, token, -1)
    expect("POW_INVALID", pow_.verify, token, 2**64)


def test_expiry(clock):
    pow_ = make(clock, bits=4, ttl=60.0)
    token, d, _ = pow_.challenge()
    nonce = solve(token, d)
    clock.advance(60.0)
    expect("POW_INVALID", pow_.verify, token, nonce)


def test_token_from_the_future_is_refused(clock):
    issuer = make(type(clock)(clock.now + 3600), bits=4)
    token, d, _ = issuer.challenge()
    expect("POW_INVALID", make(clock, bits=4).verify, token, solve(token, d))


def test_replay_is_refused_until_expiry(clock):
    pow_ = make(clock, bits=4)
    token, d, _ = pow_.challenge()
    nonce = solve(token, d)
    pow_.verify(token, nonce)
    e = expect("POW_INVALID", pow_.verify, token, nonce)
    assert "already used" in e.message
    other = next(n for n in range(nonce + 1, 10**6) if work_bits(token, n) >= d)
    expect("POW_INVALID", pow_.verify, token, other)  # a new nonce does not make it new


def test_replay_set_is_bounded_and_purged(clock):
    pow_ = make(clock, bits=1, replay_capacity=3)
    solved = []
    for _ in range(5):
        token, d, _ = pow_.challenge()
        solved.append((token, solve(token, d)))
        pow_.verify(*solved[-1])
        clock.advance(1)
    assert pow_.stats()["replay_set"] == 3
    assert pow_.stats()["replay_evictions"] == 2
    pow_.verify(*solved[0])  # evicted: the price of a bounded set, and why it is large
    clock.advance(120)
    token, d, _ = pow_.challenge()
    pow_.verify(token, solve(token, d))
    assert pow_.stats()["replay_set"] == 1  # the expired ones were purged


def test_grace_window_for_a_rising_difficulty(clock):
    pow_ = make(clock, bits=4)
    token, d, _ = pow_.challenge()
    nonce = solve(token, d)
    pow_.difficulty = 6  # rose by 2 while the client was solving: still accepted
    pow_.verify(token, nonce)
    token, d, _ = make(clock, bits=4).challenge()
    pow_.difficulty = 7  # rose by 3: too stale
    e = expect("POW_INVALID", pow_.verify, token, solve(token, d))
    assert "too easy" in e.message


def test_work_is_checked_against_the_tokens_difficulty(clock):
    # A token issued at 6 bits after the difficulty fell to 2 still needs its 6 bits.
    pow_ = make(clock, bits=6)
    token, _, _ = pow_.challenge()
    pow_.difficulty = 2
    weak = next(n for n in range(10**6) if 2 <= work_bits(token, n) < 6)
    expect("POW_INVALID", pow_.verify, token, weak)
    pow_.verify(token, solve(token, 6))


def test_secret_and_difficulty_validation(clock):
    with pytest.raises(ValueError):
        ProofOfWork(b"short")
    pow_ = ProofOfWork(SECRET, clock=clock)
    with pytest.raises(ValueError):
        pow_.difficulty = 65
    with pytest.raises(ValueError):
        solve("x", 65)


@settings(max_examples=60, deadline=None)
@given(token=st.text(max_size=80), difficulty=st.integers(0, 10))
def test_solve_always_meets_the_difficulty(token, difficulty):
    nonce = solve(token, difficulty)
    assert 0 <= nonce < 2**64
    if difficulty:
        assert work_bits(token, nonce) >= difficulty
        # and it is the first such nonce: solve does no more work than needed
        assert all(work_bits(token, n) < difficulty for n in range(nonce))


@settings(max_examples=200, deadline=None)
@given(token=st.text(max_size=300), nonce=st.integers(-(2**70), 2**70))
def test_verify_never_raises_anything_but_pow_errors(token, nonce):
    pow_ = ProofOfWork(SECRET, clock=lambda: 1000.0)
    pow_.difficulty = 4
    with pytest.raises(ProofOfWorkRequired):
        pow_.verify(token, nonce)


def test_token_layout_is_signed_with_hmac_sha256(clock):
    token, _, _ = make(clock, bits=3).challenge()
    raw = base64.urlsafe_b64decode(token + "==")
    header, mac = raw[:-32], raw[-32:]
    assert hmac.compare_digest(mac, hmac.new(SECRET, header, hashlib.sha256).digest())
    assert header[0] == 1 and header[9] == 3
    assert int.from_bytes(header[1:9], "big") == int(clock.now * 1000)


# -- the difficulty controller ---------------------------------------------------------------
def test_controller_rises_at_most_once_a_second(clock):
    c = DifficultyController(step=2, max_bits=8, clock=clock)
    assert c.observe(0.9) == 2
    assert c.observe(5.0) == 2  # a burst of readings in the same second
    clock.advance(0.99)
    assert c.observe(1.0) == 2
    clock.advance(0.01)
    assert c.observe(1.0) == 4
    for _ in range(10):
        clock.advance(1)
        c.observe(1.0)
    assert c.bits == 8  # capped


def test_controller_decays_after_calm_and_holds_in_between(clock):
    c = DifficultyController(step=2, calm_after=5.0, clock=clock)
    for _ in range(3):
        c.observe(1.0)
        clock.advance(1)
    assert c.bits == 6
    c.observe(0.1)  # calm starts
    clock.advance(4.9)
    assert c.observe(0.1) == 6
    clock.advance(0.1)
    assert c.observe(0.1) == 4
    clock.advance(3)
    c.observe(0.5)  # the middle band holds, and restarts the calm period
    clock.advance(3)
    assert c.observe(0.1) == 4
    clock.advance(4.9)
    assert c.observe(0.1) == 4
    for _ in range(4):
        clock.advance(5)
        c.observe(0.0)
    assert c.bits == 0


def test_proof_of_work_follows_its_controller(clock):
    c = DifficultyController(clock=clock)
    pow_ = ProofOfWork(SECRET, clock=clock, controller=c)
    pow_.verify(None, None)
    c.observe(1.0)
    assert pow_.difficulty == 2
    expect("POW_REQUIRED", pow_.verify, None, None)
    token, d, _ = pow_.challenge()
    assert d == 2
    pow_.verify(token, solve(token, d))
    with pytest.raises(AttributeError):
        pow_.difficulty = 3
    assert pow_.stats()["difficulty"] == 2


def test_controller_validation():
    with pytest.raises(ValueError):
        DifficultyController(min_bits=5, max_bits=4)
    with pytest.raises(ValueError):
        DifficultyController(step=0)


@settings(max_examples=100, deadline=None)
@given(readings=st.lists(st.tuples(st.floats(0, 3), st.floats(0, 10)), max_size=80))
def test_controller_stays_in_bounds(readings):
    now = [0.0]
    c = DifficultyController(min_bits=2, max_bits=16, step=3, clock=lambda: now[0])
    previous = c.bits
    for pressure, dt in readings:
        now[0] += dt
        bits = c.observe(pressure)
        assert 2 <= bits <= 16
        if pressure > 0.8:
            assert bits >= previous
        else:
            assert bits <= previous
        assert abs(bits - previous) <= 3
        previous = bits


def test_redeem_asks_for_work_even_when_the_load_does_not(clock):
    """Solutions that buy priority are checked at their own floor, whatever the load."""
    pow_ = ProofOfWork(SECRET, clock=clock)  # difficulty 0: verify() asks nothing
    token, bits, _ = pow_.challenge(min_bits=10)
    assert bits == 10
    expect("POW_INVALID", pow_.redeem, token, _unsolved(token, 10), 10)
    nonce = solve(token, bits)
    assert pow_.redeem(token, nonce, min_bits=10) == 10
    expect("POW_INVALID", pow_.redeem, token, nonce, 10)  # spent
    easy, _, _ = pow_.challenge()
    expect("POW_INVALID", pow_.redeem, easy, solve(easy, 0), 10)  # too little work


def _unsolved(token: str, bits: int) -> int:
    return next(n for n in range(1000) if work_bits(token, n) < bits)
