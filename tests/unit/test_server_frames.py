"""No frame the server builds exceeds ``limits.MAX_SERVER_FRAME_BYTES`` (issue 7, finding 3):
pushed updates are split across frames, a result that would not fit becomes a typed error."""

from __future__ import annotations

import itertools
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pigeon.protocol import limits, methods
from pigeon.protocol import updates as up
from pigeon.protocol.frames import (
    ClientProtocol, ErrorReceived, ItemsReceived, ResultReceived, ServerProtocol,
    UpdatesReceived,
)
from pigeon.protocol.sizes import PAGE_BYTES, ByteBudget, encoded_size
from pigeon.protocol.types import Message, State

# One code point of each UTF-8 width: a text's bytes run from 1 to 4 per character.
CHARS = st.sampled_from(["a", "ж", "€", "\U0001f600"])


def message_update(i: int, char: str, length: int) -> up.NewMessage:
    return up.NewMessage(pts=i + 1, message=Message(
        chat_id=1, id=i + 1, sender_id=2, date=1.0, text=char * length))


LONG = st.integers(0, limits.MAX_TEXT_CHARS)
UPDATES = st.lists(st.tuples(CHARS, st.one_of(LONG, st.just(limits.MAX_TEXT_CHARS))),
                   max_size=80).map(
    lambda specs: [message_update(i, c, n) for i, (c, n) in enumerate(specs)])


def speaking(version: int) -> ServerProtocol:
    """A server's side of a connection that negotiated ``version``."""
    server = ServerProtocol()
    server.receive(msgspec.msgpack.encode({"t": "hello", "versions": [version]}))
    assert server.version == version
    return server


def pushed(frame: bytes) -> list[Any]:
    """The updates a client reads from one pushed frame, of either version."""
    event = ClientProtocol().receive(frame)
    if isinstance(event, ItemsReceived):
        assert all(item.stream == "user:7" and item.seq == item.body.pts for item in event.items)
        return [item.body for item in event.items]
    assert isinstance(event, UpdatesReceived)
    return event.updates


@pytest.mark.parametrize("version", limits.SUPPORTED_VERSIONS)
@settings(max_examples=40, deadline=None)
@given(updates=UPDATES)
def test_pushed_updates_split_into_frames_that_fit_and_keep_their_order(version, updates):
    frames = speaking(version).update_frames(updates, "user:7")
    assert all(len(frame) <= limits.MAX_SERVER_FRAME_BYTES for frame in frames)
    received: list[Any] = []
    for frame in frames:
        got = pushed(frame)
        assert got
        received += got
    assert received == updates
    # As few frames as the greedy cut gives: no two neighbours would have fit together.
    for first, second in itertools.pairwise(frames):
        assert len(first) + len(second) > limits.MAX_SERVER_FRAME_BYTES - 1024


@pytest.mark.parametrize("version", limits.SUPPORTED_VERSIONS)
def test_twenty_of_the_largest_messages_make_two_frames(version):
    updates = [message_update(i, "\U0001f600", limits.MAX_TEXT_CHARS) for i in range(20)]
    assert len(ServerProtocol.updates(updates)) > limits.MAX_SERVER_FRAME_BYTES  # the old way
    assert len(speaking(version).update_frames(updates, "user:7")) == 2


def test_a_result_that_would_not_fit_is_answered_with_a_typed_error():
    client = ClientProtocol()
    request_id, _ = client.call("users.get", methods.GetUsers(ids=[1]))
    huge = [{"id": i, "name": "x" * 64} for i in range(5000)]
    frame = ServerProtocol.result(request_id, huge)
    assert len(frame) < 1024
    event = client.receive(frame)
    assert isinstance(event, ErrorReceived) and event.id == request_id
    assert event.error.code == "RESULT_TOO_LARGE" and "frame limit" in event.error.message


def test_a_result_that_fits_is_sent_as_it_is():
    client = ClientProtocol()
    request_id, _ = client.call("users.get", methods.GetUsers(ids=[1]))
    event = client.receive(ServerProtocol.result(request_id, [{"id": 1, "name": "Ann"}]))
    assert isinstance(event, ResultReceived) and event.value[0].name == "Ann"


def test_a_full_page_fits_in_a_result_frame_with_room_to_spare():
    """The envelope (frame tag, request id, a difference's state and more) stays within
    what the budget leaves for it, with the largest ids and pts there are."""
    budget = ByteBudget()
    page = []
    i = 0
    while budget.take(item := message_update(i, "\U0001f600", limits.MAX_TEXT_CHARS)):
        page.append(msgspec.structs.replace(item, pts=2**62 - i))
        i += 1
    diff = up.Difference(updates=page, state=State(pts=2**62, date=1e12), more=True)
    frame = ServerProtocol.result(limits.MAX_REQUEST_ID, diff)
    assert b"RESULT_TOO_LARGE" not in frame
    assert PAGE_BYTES - 17_000 < len(frame) <= limits.MAX_SERVER_FRAME_BYTES


def test_the_budget_always_takes_a_first_item():
    budget = ByteBudget(10)
    assert budget.take("x" * 100)
    assert not budget.take("y")
    assert encoded_size("x" * 100) == 102


def test_a_full_stream_page_fits_in_a_result_frame():
    """updates.get_stream_difference budgets its bodies with PAGE_BYTES less the largest
    envelope per item (server/streams.py): a page of the largest messages fits, and so does
    one of the most items with the longest names and positions there are."""
    from pigeon.protocol.streams import StreamDifference, item, item_overhead

    stream = "user:" + "9" * 19
    limit = limits.MAX_DIFFERENCE_PAGE
    for body_of in (lambda i: message_update(i, "\U0001f600", limits.MAX_TEXT_CHARS),
                    lambda i: up.Typing(pts=2**62, chat_id=2**62, user_id=2**62)):
        budget = ByteBudget(PAGE_BYTES - limit * item_overhead(stream))
        bodies = []
        while len(bodies) < limit and budget.take(body := body_of(len(bodies))):
            bodies.append(body)
        page = StreamDifference(stream=stream, items=[item(stream, 2**62, b) for b in bodies],
                                seq=2**62, more=True)
        frame = ServerProtocol.result(limits.MAX_REQUEST_ID, page)
        assert b"RESULT_TOO_LARGE" not in frame
        assert len(frame) <= limits.MAX_SERVER_FRAME_BYTES
