"""Contract: ``get_difference`` and ``history`` page by bytes as well as by count, so that an
answer always fits in one server frame (issue 7, finding 3).

A page stops before the item that would take it over ``max_bytes`` (it always holds at least
one item, so a reader paging on always moves); following the pages yields exactly what one
unbounded read would.
"""

from __future__ import annotations

from typing import Any

from contract_support import MAX_MEMBERS, T0, StoreFactory, make_users
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pigeon.protocol import limits
from pigeon.protocol.frames import ServerProtocol
from pigeon.protocol.sizes import encoded_size
from pigeon.store import Store

EMOJI = "\U0001f600" * limits.MAX_TEXT_CHARS
UNBOUNDED = 2**40


async def difference_pages(store: Store, user_id: int, limit: int, max_bytes: int) -> list[Any]:
    pages, pts = [], 0
    while True:
        diff = await store.get_difference(user_id, pts, limit, max_bytes)
        pages.append(diff)
        if not diff.more:
            return pages
        assert diff.updates and diff.state.pts == diff.updates[-1].pts
        pts = diff.state.pts


async def history_pages(store: Store, user_id: int, chat_id: int, limit: int,
                        max_bytes: int) -> list[list[Any]]:
    pages: list[list[Any]] = []
    before = None
    while page := await store.history(user_id, chat_id, before, limit, max_bytes):
        pages.append(page)
        before = page[-1].id
    return pages


def fits(items: list[Any], max_bytes: int) -> bool:
    return len(items) == 1 or sum(encoded_size(i) for i in items) <= max_bytes


TEXTS = st.lists(st.tuples(st.sampled_from(["a", "ж", "\U0001f600"]),
                           st.integers(1, limits.MAX_TEXT_CHARS)), min_size=1, max_size=25)


@settings(max_examples=25, deadline=None,
          phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=TEXTS, limit=st.integers(1, 30), max_bytes=st.integers(1, 60_000))
async def test_pages_cut_by_bytes_add_up_to_everything(
    store_factory: StoreFactory, texts: list[tuple[str, int]], limit: int, max_bytes: int
) -> None:
    async with store_factory() as store:
        a, b = await make_users(store, 2)
        group, _ = await store.create_group(a, "G", [b], T0, MAX_MEMBERS)
        await store.set_title(a, group.id, "stored updates count too", T0)
        for i, (char, length) in enumerate(texts):
            await store.send_message(a, group.id, i, char * length, T0 + i)
        everything = await store.get_difference(b, 0, 1000, UNBOUNDED)
        pages = await difference_pages(store, b, limit, max_bytes)
        assert [u for p in pages for u in p.updates] == everything.updates
        assert pages[-1].state == everything.state
        for page in pages:
            assert len(page.updates) <= limit and fits(page.updates, max_bytes)
        newest_first = await store.history(b, group.id, None, 100, UNBOUNDED)
        paged = await history_pages(store, b, group.id, limit, max_bytes)
        assert [m for p in paged for m in p] == newest_first
        assert all(len(p) <= limit and fits(p, max_bytes) for p in paged)


async def test_the_largest_messages_page_within_a_frame_by_default(store: Store) -> None:
    """With the default budget, every answer of a sync over twenty of the largest messages
    (about 330 KB in all) encodes to a frame the SDK accepts."""
    a, b = await make_users(store, 2)
    chat = await store.open_private(a, b, T0)
    for i in range(20):
        await store.send_message(a, chat.id, i, EMOJI, T0)
    pages, pts = [], 0
    while True:
        diff = await store.get_difference(b, pts, limits.MAX_DIFFERENCE_PAGE)
        frame = ServerProtocol.result(limits.MAX_REQUEST_ID, diff)
        assert b"RESULT_TOO_LARGE" not in frame and len(frame) <= limits.MAX_SERVER_FRAME_BYTES
        pages.append(len(diff.updates))
        if not diff.more:
            break
        pts = diff.state.pts
    assert sum(pages) == 20 and len(pages) == 2
    history = await store.history(b, chat.id, None, limits.MAX_HISTORY_PAGE)
    assert 0 < len(history) < 20
    assert len(ServerProtocol.result(1, history)) <= limits.MAX_SERVER_FRAME_BYTES
