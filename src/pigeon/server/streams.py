"""Reading streams (protocol version 2): ``updates.get_stream_difference``.

Only the caller's own stream, ``user:<id>``, exists yet; it is the user's ``pts`` log seen as
stream items. Device and chat streams will be served here too.
"""

from __future__ import annotations

from pigeon.protocol import methods as m
from pigeon.protocol.errors import NotFound
from pigeon.protocol.holdback import hold_back
from pigeon.protocol.sizes import PAGE_BYTES
from pigeon.protocol.streams import StreamDifference, item, item_overhead, user_stream

from .services import Caller


async def get_stream_difference(caller: Caller, p: m.GetStreamDifference) -> StreamDifference:
    own = user_stream(caller.user_id)
    if p.stream != own:
        # One answer for a stream that does not exist and one that is not the caller's.
        raise NotFound(f"no stream {p.stream!r} that you follow", code="STREAM_NOT_FOUND")
    # The store budgets a page on its update bodies; each item's envelope comes on top.
    budget = PAGE_BYTES - p.limit * item_overhead(own)
    diff = await caller.services.store.get_difference(caller.user_id, p.seq, p.limit,
                                                      max_bytes=budget)
    version = caller.version
    return StreamDifference(
        stream=own, items=[item(own, u.pts, hold_back(u, version)) for u in diff.updates],
        seq=diff.state.pts, more=diff.more)


HANDLERS = {
    "updates.get_stream_difference": get_stream_difference,
}
