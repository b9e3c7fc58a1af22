"""A forwarded group call waits longer for the blobs it lends (server/regions.py): the
group's region fetches them before it answers, so a fixed wait would time out a large file
on every retry and it would never get through."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from pigeon.domain.regions import parse_table
from pigeon.protocol.region_groups import GroupAnswer, GroupCall
from pigeon.server.regions import CARRY_RATE, GROUP_CALL_TIMEOUT, RegionLink


async def test_the_wait_grows_with_the_bytes_lent() -> None:
    table = parse_table({"regions": [
        {"name": name, "index": i, "endpoints": ["ws://127.0.0.1:1/v1/ws"],
         "calling_codes": [49 + i], "default": i == 0} for i, name in enumerate("ab")]})
    services = SimpleNamespace(settings=SimpleNamespace(bus_prefix="pigeon", bus=""))
    link = RegionLink(services, table, "b")  # type: ignore[arg-type]
    waits: list[float] = []

    async def ask(region: str, what: str, question: Any, answer: Any, timeout: float) -> Any:
        waits.append(timeout)
        return GroupAnswer(result=b"\xc0")

    link.ask = ask  # type: ignore[method-assign]
    call = GroupCall(origin="b", actor_id=(1 << 40) + 1, method="messages.send", params=b"")
    await link.group_call("a", call)
    await link.group_call("a", call, 64 * 1024 * 1024)
    assert waits == [GROUP_CALL_TIMEOUT, GROUP_CALL_TIMEOUT + 64 * 1024 * 1024 / CARRY_RATE]
    assert waits[1] >= 30  # a 64 MiB video gets half a minute and more, not 5 s
