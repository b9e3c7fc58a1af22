"""Contract, by property: a replica converges on its group. Two stores play two regions: the
group lives in ``home`` (region b), with members homed there and members homed in region a,
whose store keeps the replica. Random writes in the group (sends, resends, replies, edits,
deletes for everyone, adds and removals, roles, the title) are done by the group's region,
as a forwarded call would be, and what it queued is carried to the replica in order, now and
then, sometimes twice. At the end every member homed in a sees, from a, the group's members,
roles, title and history as b has them, and a dense update log of their own; b wrote no
update for them."""

from __future__ import annotations

from typing import Any

from contract_support import MAX_MEMBERS, T0, StoreFactory, full_difference, make_users
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from pigeon.protocol.errors import PigeonError
from pigeon.protocol.regions import RemoteUser, cross_of
from pigeon.store import Store

HOME_FIRST_ID = 1 << 40  # region b's ids; region a's start at 1
ALLOWED = {"NOT_A_MEMBER", "NOT_ADMIN", "NOT_AUTHOR", "MESSAGE_NOT_FOUND", "USER_NOT_FOUND",
           "ALREADY_MEMBER", "RANDOM_ID_DUPLICATE", "PEER_IS_SELF", "FORBIDDEN"}


async def people(home: Store, replica: Store) -> tuple[list[int], list[int]]:
    """Two people homed in b (the owner first) and three homed in a, known to both."""
    if hasattr(home, "reserve_user_ids") and type(home).__name__ == "PostgresStore":
        await home.reserve_user_ids(HOME_FIRST_ID, (2 << 40) - 1)
    else:  # SQLite gives a new row the largest id + 1: a row at the range's start moves it
        await home.remember_remote(RemoteUser(id=HOME_FIRST_ID, name="floor"), "z", T0)
    b_people = await make_users(home, 2)
    a_people = await make_users(replica, 3)
    for uid in a_people:
        await home.remember_remote(RemoteUser(id=uid, name=f"user{uid}",
                                              who_can_add="everyone"), "a", T0)
    return b_people, a_people


async def carry(home: Store, replica: Store, seq: int, twice: bool) -> int:
    """What b queued for a, applied in order (``twice``: delivered again too)."""
    rows = await home.outbox("a", 1000)
    for row in rows:
        cross = cross_of(row.kind, {"origin": "b", **row.fields()})
        seq += 1
        verdict, _ = await replica.apply_cross(cross, seq, T0, None)
        assert verdict == "apply"
        if twice:
            assert await replica.apply_cross(cross, seq, T0, None) == ("old", [])
    await home.outbox_done([row.id for row in rows])
    return seq


async def write(home: Store, group: int, op: tuple[Any, ...], everyone: list[int],
                now: float) -> None:
    kind, who, other, n = op
    actor, target = everyone[who], everyone[other]
    try:
        if kind == "send":
            await home.send_message(actor, group, n, f"{actor}:{n}", now,
                                    reply_to=n if n % 3 == 0 else None)
        elif kind == "edit":
            await home.edit_message(actor, group, n, f"edit {now}", now)
        elif kind == "delete":
            await home.delete_messages(actor, group, [n, n + 1], True)
        elif kind == "add":
            await home.add_members(actor, group, [target], now, MAX_MEMBERS)
        elif kind == "remove":
            await home.remove_member(actor, group, target, now)
        elif kind == "role":
            await home.set_role(actor, group, target, ("admin", "member")[n % 2], now)
        else:
            await home.set_title(actor, group, f"title {n}", now)
    except PigeonError as exc:
        assert exc.code in ALLOWED, f"{op}: unexpected {exc!r}"


OPS = st.tuples(st.sampled_from(["send"] * 5 + ["edit", "delete", "add", "remove", "role",
                                                  "title"]),
                st.integers(0, 4), st.integers(0, 4), st.integers(1, 12))


async def seen(store: Store, uid: int, group: int) -> Any:
    try:
        chat = await store.get_chat(uid, group)
    except PigeonError as exc:
        assert exc.code == "NOT_A_MEMBER"
        return None
    members = sorted((m.user.id, m.role) for m in await store.list_members(uid, group, 0, 100))
    history = [(m.id, m.sender_id, m.text, m.edit_date, m.reply_to)
               for m in await store.history(uid, group, None, 100)]
    return chat.title, chat.member_count, chat.role, members, history


@settings(max_examples=25, deadline=None,
          phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(OPS, st.booleans(), st.booleans()), min_size=1, max_size=30))
# a's only member is removed (a is no longer fed), someone of b leaves meanwhile, and a's
# member comes back: a must not keep the one who left
@example(ops=[(("remove", 0, 2, 1), True, False), (("remove", 0, 1, 1), True, False),
              (("add", 0, 2, 1), True, False), (("send", 2, 0, 1), True, True)])
# edits and deletes for everyone that succeed (random ops seldom hit an author's message):
# b's owner and a's member each send and edit their own, then the owner deletes both, with
# the replica fed between and at the end only
@example(ops=[(("send", 0, 0, 1), False, False), (("send", 2, 0, 2), True, False),
              (("edit", 0, 0, 1), False, False), (("edit", 2, 0, 2), True, True),
              (("delete", 0, 0, 1), False, False), (("send", 2, 0, 4), False, False),
              (("edit", 2, 0, 3), False, False), (("delete", 2, 0, 3), False, False)])
async def test_a_replica_converges_on_its_group(store_factory: StoreFactory,
                                                ops: list[tuple[Any, bool, bool]]) -> None:
    async with store_factory() as home, store_factory() as replica:
        home.crosses_regions = replica.crosses_regions = True  # as make_store with regions
        b_people, a_people = await people(home, replica)
        everyone = b_people + a_people
        group, _ = await home.create_group(b_people[0], "G", [b_people[1], a_people[0]], T0,
                                           MAX_MEMBERS)
        seq = 0
        for i, (op, now_carry, twice) in enumerate(ops):
            await write(home, group.id, op, everyone, T0 + i)
            if now_carry:
                seq = await carry(home, replica, seq, twice)
        await carry(home, replica, seq, False)
        for uid in a_people:
            assert await seen(replica, uid, group.id) == await seen(home, uid, group.id)
            log = await full_difference(replica, uid)
            assert [u.pts for u in log] == list(range(1, len(log) + 1))
            assert (await home.get_state(uid)).pts == 0  # b tells nobody homed in a
