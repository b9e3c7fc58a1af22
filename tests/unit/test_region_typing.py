"""Typing notices taken from another region (server/region_typing.py), against a real SQLite
store: the sender a notice names is only claimed, so notices of many forged senders are
bounded per origin region before the store is read, and dropping them logs one warning."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from pigeon.domain.regions import parse_table
from pigeon.protocol.regions import CrossTyping, encode
from pigeon.server.region_typing import REGION_TYPING_RATE, TypingRelay
from pigeon.shield.ratelimit import KeyedLimiter
from pigeon.store import SqliteStore


async def test_forged_senders_are_bounded_per_region_before_the_store_is_read(
        store: SqliteStore, caplog: pytest.LogCaptureFixture) -> None:
    table = parse_table({"regions": [
        {"name": name, "index": i, "endpoints": ["ws://127.0.0.1:1/v1/ws"],
         "calling_codes": [49 + i], "default": i == 0} for i, name in enumerate("ab")]})
    reads: list[int] = []
    audience = store.typing_audience

    async def counted(sender_id: int, recipient_id: int, limit: int) -> Any:
        reads.append(sender_id)
        return await audience(sender_id, recipient_id, limit)

    link = SimpleNamespace(table=table, name="b", others=["a"],
                           services=SimpleNamespace(store=SimpleNamespace(
                               typing_audience=counted)))
    relay = TypingRelay(link)  # type: ignore[arg-type]
    relay.from_region = KeyedLimiter(REGION_TYPING_RATE, clock=lambda: 0.0)  # no refill
    bob = (1 << 40) + 5
    caplog.set_level(logging.DEBUG, "pigeon.regions")
    for forged in range(1, 1001):  # a thousand senders of a, each within its own rate
        notice = CrossTyping(origin="a", sender_id=forged, recipient_id=bob)
        await relay.receive(SimpleNamespace(data=encode(notice)))
    assert len(reads) == REGION_TYPING_RATE.burst
    assert relay.dropped == 1000  # none has a chat with Bob here; the rest over the rate
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "1 dropped so far" in warnings[0].getMessage()
