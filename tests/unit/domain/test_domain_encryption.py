"""What an end-to-end encrypted group takes (pigeon.domain.encryption), and how its new
wire fields read for a peer that does not know them."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.domain import encryption
from pigeon.protocol import limits
from pigeon.protocol import methods as m
from pigeon.protocol.errors import Forbidden, InvalidArgument
from pigeon.protocol.types import Chat, Message, Struct

TEXTS = st.text(max_size=50)
CIPHERTEXTS = st.none() | st.binary(min_size=1, max_size=64)


@given(st.booleans(), TEXTS, CIPHERTEXTS)
def test_a_secret_chat_takes_ciphertext_alone_and_others_never(secret: bool, text: str,
                                                                ciphertext: bytes | None):
    if secret and (ciphertext is None or text):
        with pytest.raises(Forbidden) as refused:
            encryption.check_body(secret, text, ciphertext)
        assert refused.value.code == "ENCRYPTION_REQUIRED"
    elif not secret and ciphertext is not None:
        with pytest.raises(InvalidArgument) as wrong:
            encryption.check_body(secret, text, ciphertext)
        assert wrong.value.code == "CHAT_NOT_ENCRYPTED"
    else:
        encryption.check_body(secret, text, ciphertext)


def test_text_is_checked_only_without_ciphertext():
    assert encryption.check_text("", b"x") == ""
    with pytest.raises(InvalidArgument):
        encryption.check_text("", None)


def test_edits_forwards_and_large_groups():
    encryption.check_plain_edit(False)
    encryption.check_forward(False, False)
    encryption.check_new_group(True, False)
    encryption.check_new_group(False, True)
    for refused in (lambda: encryption.check_plain_edit(True),
                    lambda: encryption.check_forward(True, False),
                    lambda: encryption.check_forward(False, True)):
        with pytest.raises(Forbidden):
            refused()
    with pytest.raises(InvalidArgument):
        encryption.check_new_group(True, True)


def test_ciphertext_is_bounded_on_the_wire():
    decoder = msgspec.msgpack.Decoder(m.SendMessage)
    at_most = b"x" * limits.MAX_MESSAGE_CIPHERTEXT_BYTES
    ok = decoder.decode(msgspec.msgpack.encode(
        {"chat_id": 1, "random_id": 1, "ciphertext": at_most}))
    assert ok.ciphertext == at_most and ok.text == ""
    for bad in (at_most + b"x", b""):
        with pytest.raises(msgspec.ValidationError):
            decoder.decode(msgspec.msgpack.encode(
                {"chat_id": 1, "random_id": 1, "ciphertext": bad}))


class OldMessage(Struct):
    """Message as an SDK from before encrypted groups declares it."""

    chat_id: int
    id: int
    sender_id: int
    date: float
    text: str = ""
    deleted: bool = False


class OldChat(Struct):
    id: int
    kind: str
    title: str = ""


def test_a_reader_that_does_not_know_the_new_fields_still_reads():
    sealed = Message(chat_id=1, id=2, sender_id=3, date=4.0, ciphertext=b"\x00\xffopaque")
    old = msgspec.msgpack.decode(msgspec.msgpack.encode(sealed), type=OldMessage)
    assert (old.id, old.text, old.deleted) == (2, "", False)
    chat = Chat(id=1, kind="group", title="T", secret=True)
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(chat), type=OldChat).title == "T"
    # ... and a plain message or chat carries no trace of them (defaults are omitted).
    plain = msgspec.msgpack.encode(Message(chat_id=1, id=2, sender_id=3, date=4.0, text="hi"))
    assert b"ciphertext" not in plain
    assert b"secret" not in msgspec.msgpack.encode(Chat(id=1, kind="group"))
