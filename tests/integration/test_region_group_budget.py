"""A member homed elsewhere pays for what their calls make in a group's region, as a member
homed there does (review finding: forwarded calls skipped ``rate_fanout``, so one account
in another region could make a 200k-member group's region write without bound)."""

from __future__ import annotations

import pytest
from test_region_groups import b_person, code_of
from test_regions_events import until

from pigeon.testing import login
from pigeon.testing_regions import RegionNode as Region

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def region_env() -> dict[str, str]:
    return {"PIGEON_RATE_FANOUT": "1/1h burst 8"}  # a few messages to a group of three


async def test_forwarded_calls_spend_the_fanout_budget(regions: tuple[Region, Region],
                                                       phone) -> None:
    a, b = regions
    alice = await login(a.node, phone(), "Alice")
    carol = await login(a.node, phone(), "Carol")
    bob, bob_phone = await b_person(b, "Bob")
    try:
        bob_id = (await alice.account.resolve_phone(bob_phone)).id
        group = await alice.chats.create_group("budget", [carol.profile.user_id or 0, bob_id])

        async def replica() -> bool:
            return await code_of(bob.chats.get(group.id)) == "done"
        await until(replica)
        codes = [await code_of(bob.messages.send(group.id, f"b {i}")) for i in range(8)]
        assert "done" in codes and codes[-1] == "RATE_LIMITED", codes
        # refused before the write: none of the refused ones reached the group
        texts = [msg.text for msg in await alice.messages.history(group.id)]
        assert len(texts) == codes.count("done")
        # leaving is never refused
        assert await code_of(bob.chats.leave(group.id)) == "done"
    finally:
        for client in (alice, carol, bob):
            await client.close()
