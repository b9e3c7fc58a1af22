"""Contract: device keys asked from another region (store/sqlite_region_keys.py). A person
homed elsewhere is answered by the rule a claim or a query meets at home (who may be seen),
with a private chat either way standing in for a lookup this region never saw; sharing only a
supergroup, in which members do not see each other, is not enough. And a region knows which
device ids are its own sessions, whatever range they fall in."""

from __future__ import annotations

from contract_support import MAX_MEMBERS, T0, make_users
from test_store_keys import device

from pigeon.protocol.regions import RemoteUser
from pigeon.store import Store

ASKER = RemoteUser(id=(1 << 40) + 5, name="Asker")  # homed in region b


async def test_a_supergroup_together_does_not_hand_out_keys_across_regions(store: Store) -> None:
    store.crosses_regions = True
    owner, bob = await make_users(store, 2)
    await store.remember_remote(ASKER, "b", T0)
    bobs = await device(store, bob, keys=3)
    await store.create_group(owner, "big", [bob, ASKER.id], T0, MAX_MEMBERS, large=True)
    assert await store.keys_for(ASKER.id, [bob], 10) == []
    assert await store.claim_keys_for(ASKER.id, (1 << 40) + 9, [bobs]) == []
    # a group (members see each other, as at home) is enough
    await store.create_group(owner, "small", [bob, ASKER.id], T0, MAX_MEMBERS)
    assert [d.device_id for d in await store.keys_for(ASKER.id, [bob], 10)] == [bobs]
    claimed = await store.claim_keys_for(ASKER.id, (1 << 40) + 9, [bobs])
    assert [(k.device_id, left) for k, left in claimed] == [(bobs, 2)]


async def test_a_region_knows_its_own_sessions_in_any_range(store: Store) -> None:
    (alice,) = await make_users(store, 1)
    mine = await device(store, alice)
    assert await store.devices_here([mine, (1 << 40) + 3]) == {mine}
    assert await store.devices_here([]) == set()
