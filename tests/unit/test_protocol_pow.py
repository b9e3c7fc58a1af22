"""The proof-of-work format in the protocol package: keyless, and the shield agrees with it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pigeon.protocol import pow as fmt
from pigeon.shield import pow as shield_pow
from pigeon.shield import ticket

TOKENS = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-",
                 min_size=1, max_size=256)


def test_the_shield_issues_tokens_in_the_protocols_layout():
    pow_ = shield_pow.ProofOfWork(b"s" * 32)
    pow_.difficulty = 4
    token, difficulty, _ = pow_.challenge()
    import base64
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert len(raw) == fmt.TOKEN_SIZE
    version, _issued, bits, _salt = fmt.TOKEN_LAYOUT.unpack(raw[:fmt.TOKEN_LAYOUT.size])
    assert (version, bits) == (fmt.TOKEN_VERSION, difficulty)
    nonce = fmt.solve(token, difficulty)
    assert fmt.work_bits(token, nonce) >= difficulty
    assert pow_.redeem(token, nonce) == difficulty


@given(TOKENS, st.integers(min_value=0, max_value=2**64 - 1))
def test_a_ticket_round_trips_and_the_shield_reads_it(token: str, nonce: int) -> None:
    value = fmt.format_ticket(token, nonce)
    assert fmt.parse_ticket(value) == (token, nonce)
    head = f"GET /v1/ws?{fmt.TICKET_PARAM}={value} HTTP/1.1\r\n".encode()
    assert ticket.ticket_in_request(head) == (token, nonce)


@given(TOKENS, st.integers(min_value=0, max_value=fmt.MAX_BITS))
def test_a_challenge_header_round_trips(token: str, bits: int) -> None:
    assert fmt.parse_challenge(fmt.format_challenge(token, bits)) == (token, bits)
    response = ticket.challenge_response(token, bits).decode()
    line = next(x for x in response.split("\r\n") if x.startswith(fmt.HEADER + ":"))
    assert fmt.parse_challenge(line.partition(":")[2]) == (token, bits)


@given(st.text(max_size=300))
def test_parsers_never_raise(value: str) -> None:
    for parse in (fmt.parse_ticket, fmt.parse_challenge):
        result = parse(value)
        assert result is None or isinstance(result, tuple)
