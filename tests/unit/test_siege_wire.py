"""The siege builds its well-formed frames with the protocol package (issue 8, deliverable 5):
the server's own state machine reads them as what they claim to be, and the junk attack can
still send what the protocol's structs would never build."""

from __future__ import annotations

import msgspec

from pigeon.protocol import frames
from pigeon.siege import wire


def test_the_server_reads_the_sieges_hello_and_call():
    server = frames.ServerProtocol()
    hello = server.receive(wire.hello("tok"))
    assert isinstance(hello, frames.HelloReceived) and hello.token == "tok"
    call = server.receive(wire.call(7, "messages.history", {"chat_id": 1}))
    assert isinstance(call, frames.CallReceived)
    assert (call.id, call.method, call.params.chat_id) == (7, "messages.history", 1)


def test_hello_and_call_keep_their_shape_on_the_wire():
    assert msgspec.msgpack.decode(wire.hello()) == {
        "t": "hello", "versions": [1], "client": "pigeon-siege"}
    assert msgspec.msgpack.decode(wire.call(3, "x.y", {"chat_id": "x", "text": 7})) == {
        "t": "call", "id": 3, "method": "x.y", "params": {"chat_id": "x", "text": 7}}


def test_junk_still_goes_out_and_the_server_refuses_it():
    server = frames.ServerProtocol()
    server.receive(wire.hello())
    junk = server.receive(wire.pack({"t": "call", "id": -1, "method": 5}))
    assert not isinstance(junk, frames.CallReceived)
    ill_typed = server.receive(wire.call(1, "messages.send", {"chat_id": "x", "text": 7}))
    assert isinstance(ill_typed, frames.CallRejected)
