"""WebSocket frames as bytes (protocol/websocket.py): a server's (unmasked) and a client's
(masked) frames of any size and opcode read back whole, as the siege's parser reads them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pigeon.protocol.websocket import OP_BINARY, OP_CLOSE, OP_TEXT, apply_mask, encode_frame
from pigeon.siege.wire import FrameParser

payloads = st.one_of(st.binary(max_size=200), st.binary(min_size=65_530, max_size=65_600))


@given(payloads, st.sampled_from([OP_BINARY, OP_TEXT, OP_CLOSE]),
       st.one_of(st.none(), st.binary(min_size=4, max_size=4)), st.integers(1, 7))
def test_frames_read_back_whole_in_any_cut(payload: bytes, opcode: int, mask: bytes | None,
                                           cuts: int) -> None:
    data = encode_frame(payload, opcode, mask=mask)
    assert (data[1] & 0x80 != 0) == (mask is not None)
    parser, got = FrameParser(), []
    step = max(1, len(data) // cuts)
    for start in range(0, len(data), step):
        got += parser.feed(data[start:start + step])
    assert got == [(opcode, payload)]


@given(st.binary(max_size=64), st.binary(min_size=4, max_size=4))
def test_masking_twice_is_the_payload(payload: bytes, key: bytes) -> None:
    assert apply_mask(apply_mask(payload, key), key) == payload
