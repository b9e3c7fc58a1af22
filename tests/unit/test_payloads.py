"""The plaintext inside device envelopes: every variant round-trips, anything else is read
as UnknownPayload and never raises (a peer device runs code we do not control)."""

from hypothesis import given
from hypothesis import strategies as st

from pigeon.crypto.payloads import (
    RoomKey,
    SecretShown,
    SecretText,
    UnknownPayload,
    encode_payload,
    read_payload,
)


def test_variants_round_trip() -> None:
    for payload in (
        SecretText(chat_id=7, message_id="ab" * 8, text="hi", sent_at=1, ttl=30),
        SecretShown(chat_id=7, message_ids=["cd" * 8], at=5),
        RoomKey(chat_id=3, session_id="s", session_key="k"),
    ):
        assert read_payload(encode_payload(payload)) == payload


def test_unknown_variant_is_skipped_not_an_error() -> None:
    import msgspec

    raw = msgspec.msgpack.encode({"p": "future.thing", "x": 1})
    assert read_payload(raw) == UnknownPayload(tag="future.thing")


def test_out_of_bounds_ttl_is_malformed() -> None:
    import msgspec

    raw = msgspec.msgpack.encode({"p": "secret.text", "chat_id": 1, "message_id": "ab" * 8,
                                  "text": "x", "sent_at": 1, "ttl": 8 * 24 * 3600})
    read = read_payload(raw)
    assert isinstance(read, UnknownPayload)
    assert read.tag == "secret.text" and "malformed" in read.error


@given(st.binary(max_size=512))
def test_any_bytes_never_raise(raw: bytes) -> None:
    read_payload(raw)
