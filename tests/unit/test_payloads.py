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


FILE = {"file_id": "f" * 22, "name": "plans.txt", "size": 10, "key": "k" * 44,
        "nonce": "n" * 16, "sha256": "0" * 64, "mime": "text/plain"}


def test_a_secret_file_round_trips_and_a_bad_one_is_malformed() -> None:
    import msgspec

    from pigeon.crypto.payloads import SecretFile

    text = SecretText(chat_id=7, message_id="ab" * 8, text="", sent_at=1,
                      file=SecretFile(**FILE))  # type: ignore[arg-type]
    assert read_payload(encode_payload(text)) == text
    for field, bad in (("file_id", "../etc"), ("key", "short"), ("sha256", "z" * 64),
                       ("size", -1), ("name", "n" * 256)):
        raw = msgspec.msgpack.encode({"p": "secret.text", "chat_id": 1, "message_id": "ab" * 8,
                                      "text": "", "sent_at": 1, "file": {**FILE, field: bad}})
        read = read_payload(raw)
        assert isinstance(read, UnknownPayload) and "malformed" in read.error, field


@given(st.dictionaries(st.sampled_from(sorted(FILE)),
                       st.one_of(st.text(max_size=80), st.integers(-2**63, 2**64 - 1), st.none())))
def test_any_file_field_never_raises(fields: dict[str, object]) -> None:
    import msgspec

    raw = msgspec.msgpack.encode({"p": "secret.text", "chat_id": 1, "message_id": "ab" * 8,
                                  "text": "", "sent_at": 1, "file": {**FILE, **fields}})
    read_payload(raw)
