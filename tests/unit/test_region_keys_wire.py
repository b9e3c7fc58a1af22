"""Device keys and envelopes across regions on the wire (protocol/region_keys.py and
``CrossEnvelope``): every struct survives the wire, an outbox row makes the envelope it was
queued as, every new field is bounded (refused typed past its bound), the largest envelope
fits a stream message, and a region that predates the kind skips it."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.protocol import limits
from pigeon.protocol import regions as w
from pigeon.protocol.errors import InvalidArgument
from pigeon.protocol.keys import (
    MAX_CIPHERTEXT_BYTES, MAX_DEVICES_PER_CALL, MAX_USERS_PER_QUERY, ClaimedKey, DeviceKeys,
    IdentityKeys, SignedKey,
)
from pigeon.protocol.region_keys import (
    MAX_REMOTE_DEVICES, ClaimAsk, ClaimFound, KeysAsk, KeysFound,
)
from pigeon.store.sqlite_regions import Queued

ids = st.integers(min_value=1, max_value=2**62)
regions = st.from_regex(r"[a-z0-9][a-z0-9-]{0,31}", fullmatch=True)
users = st.builds(w.RemoteUser, id=ids, name=st.text(max_size=limits.MAX_NAME_CHARS))
keys = st.from_regex(r"[A-Za-z0-9+/]{43}", fullmatch=True)
signatures = st.from_regex(r"[A-Za-z0-9+/]{86}", fullmatch=True)
identities = st.builds(IdentityKeys, curve25519=keys, ed25519=keys, signature=signatures)
envelopes = st.builds(
    w.CrossEnvelope, origin=regions, sender=users, sender_device=ids, device_id=ids,
    ciphertext_type=st.integers(0, 255),
    ciphertext=st.binary(min_size=1, max_size=MAX_CIPHERTEXT_BYTES),
    date=st.floats(min_value=0, max_value=limits.MAX_DATE, allow_nan=False))
devices = st.builds(DeviceKeys, user_id=ids, device_id=ids, name=st.text(max_size=20),
                    identity=identities)
claimed = st.builds(ClaimedKey, user_id=ids, device_id=ids, identity=identities,
                    key=st.builds(SignedKey, key_id=st.from_regex(r"[A-Za-z0-9]{11}",
                                                                  fullmatch=True),
                                  key=keys, signature=signatures), fallback=st.booleans())


@given(envelopes)
def test_an_envelope_survives_the_wire_and_the_outbox(cross: w.CrossEnvelope) -> None:
    assert w.decode_cross(w.encode(cross)) == cross
    # what sqlite_region_keys queues and the relay makes of it
    row = Queued(7, cross.sender, cross.device_id, 0, "", cross.date, "envelope",
                 msgspec.msgpack.encode({"sender_device": cross.sender_device,
                                         "device_id": cross.device_id,
                                         "ciphertext_type": cross.ciphertext_type,
                                         "ciphertext": cross.ciphertext}))
    assert w.cross_of(row.kind, {"origin": cross.origin, **row.fields()}) == cross


@given(st.one_of(
    st.builds(KeysAsk, origin=regions, asker_id=ids,
              user_ids=st.lists(ids, min_size=1, max_size=MAX_USERS_PER_QUERY)),
    st.builds(KeysFound, devices=st.lists(devices, max_size=5)),
    st.builds(ClaimAsk, origin=regions, asker_id=ids, asker_device=ids,
              device_ids=st.lists(ids, min_size=1, max_size=MAX_DEVICES_PER_CALL)),
    st.builds(ClaimFound, keys=st.lists(claimed, max_size=5))))
def test_questions_and_answers_survive_the_wire(value: msgspec.Struct) -> None:
    assert msgspec.msgpack.decode(w.encode(value), type=type(value)) == value


def test_the_largest_envelope_fits_one_stream_message() -> None:
    biggest = w.CrossEnvelope(origin="a" * 32, sender=w.RemoteUser(
        id=2**62, name="\U0001f600" * limits.MAX_NAME_CHARS, username="u" * limits.USERNAME_MAX),
        sender_device=2**62, device_id=2**62, ciphertext_type=255,
        ciphertext=b"\xff" * MAX_CIPHERTEXT_BYTES, date=limits.MAX_DATE)
    assert len(w.encode(biggest)) <= limits.MAX_FRAME_BYTES
    assert w.decode_cross(w.encode(biggest)) == biggest


def _field(cross: w.CrossEnvelope, **changed: object) -> bytes:
    fields = {**msgspec.structs.asdict(cross), "sender": msgspec.to_builtins(cross.sender),
              "type": "envelope"}
    return msgspec.msgpack.encode({**fields, **changed})


@pytest.mark.parametrize("changed", [
    {"ciphertext": b"x" * (MAX_CIPHERTEXT_BYTES + 1)}, {"ciphertext": b""},
    {"ciphertext_type": 256}, {"ciphertext_type": -1}, {"device_id": 0},
    {"device_id": 2**62 + 1}, {"sender_device": 0}, {"origin": "A b"}, {"date": -1.0},
])
def test_an_envelope_past_a_bound_is_refused_typed(changed: dict[str, object]) -> None:
    cross = w.CrossEnvelope(origin="a", sender=w.RemoteUser(id=1, name="A"), sender_device=1,
                            device_id=2, ciphertext_type=0, ciphertext=b"c", date=1.0)
    assert w.decode_cross(_field(cross)) == cross  # only the change is refused
    data = _field(cross, **changed)
    with pytest.raises(InvalidArgument):
        w.decode_cross(data)


@pytest.mark.parametrize(("kind", "value"), [
    (KeysAsk, {"origin": "a", "asker_id": 1, "user_ids": []}),
    (KeysAsk, {"origin": "a", "asker_id": 1, "user_ids": [1] * (MAX_USERS_PER_QUERY + 1)}),
    (KeysAsk, {"origin": "a", "asker_id": 0, "user_ids": [1]}),
    (ClaimAsk, {"origin": "a", "asker_id": 1, "asker_device": 1,
                "device_ids": [1] * (MAX_DEVICES_PER_CALL + 1)}),
    (ClaimAsk, {"origin": "a", "asker_id": 1, "asker_device": 0, "device_ids": [1]}),
    (ClaimAsk, {"origin": "a", "asker_id": 1, "asker_device": 1, "device_ids": []}),
])
def test_a_question_past_a_bound_is_refused(kind: type, value: dict[str, object]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.msgpack.decode(msgspec.msgpack.encode(value), type=kind)


def test_an_answer_past_its_bound_is_refused() -> None:
    device = {"user_id": 1, "device_id": 1, "name": "d", "identity": {
        "curve25519": "A" * 43, "ed25519": "A" * 43, "signature": "A" * 86}}
    with pytest.raises(msgspec.ValidationError):
        msgspec.msgpack.decode(msgspec.msgpack.encode(
            {"devices": [device] * (MAX_REMOTE_DEVICES + 1)}), type=KeysFound)
    with pytest.raises(msgspec.ValidationError):
        msgspec.msgpack.decode(msgspec.msgpack.encode(
            {"keys": [{**device, "key": {"key_id": "k", "key": "A" * 43,
                                         "signature": "A" * 86}}]
             * (MAX_DEVICES_PER_CALL + 1)}), type=ClaimFound)


def test_a_region_that_predates_envelopes_skips_them() -> None:
    older = msgspec.msgpack.Decoder(w.CrossMessage | w.CrossEdit | w.UnknownCross)
    cross = w.CrossEnvelope(origin="a", sender=w.RemoteUser(id=1, name="A"), sender_device=1,
                            device_id=2, ciphertext_type=0, ciphertext=b"c", date=1.0)
    with pytest.raises(msgspec.ValidationError) as exc:  # what decode_cross turns into Unknown
        older.decode(w.encode(cross))
    assert "Invalid value" in str(exc.value) and "$.type" in str(exc.value)
    assert "envelope" in w.KINDS and w.KINDS[-1] == "envelope"  # added at the end
