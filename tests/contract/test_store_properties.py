"""Contract, by property: random interleavings of writes by three users in two chats.

Whatever the order, and whichever of the writes the store refuses, every user's update
sequence must come out gap-free (pts 1..N, equal to the pushes they were sent) and every
chat's message ids must be 1..K in the order the messages were accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from contract_support import (
    MAX_MEMBERS,
    T0,
    StoreFactory,
    full_difference,
    key,
    make_users,
    pushed_to,
)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pigeon.protocol.errors import PigeonError
from pigeon.store import Push, Store

USERS = 3
GROUP, PRIVATE = 0, 1  # indexes of the two chats: a group of all three; a and b in private

# The refusals these writes may meet; any other error, or any other exception, fails.
ALLOWED = {
    "send": {"NOT_A_MEMBER", "MESSAGE_NOT_FOUND", "RANDOM_ID_DUPLICATE"},
    "edit": {"NOT_A_MEMBER", "MESSAGE_NOT_FOUND", "NOT_AUTHOR"},
    "delete": {"NOT_A_MEMBER", "NOT_ADMIN"},
    "read": {"NOT_A_MEMBER"},
    "toggle": set(),
}


@dataclass
class Model:
    users: list[int]
    chats: list[int]
    pushes: list[Push] = field(default_factory=list)
    ids: dict[int, list[int]] = field(default_factory=dict)          # chat -> accepted ids
    sent: dict[tuple[int, int], tuple[int, Any, int]] = field(default_factory=dict)
    in_group: set[int] = field(default_factory=set)


async def setup(store: Store) -> Model:
    users = await make_users(store, USERS)
    a, b, c = users
    group, pushes = await store.create_group(a, "G", [b, c], T0, MAX_MEMBERS)
    private = await store.open_private(a, b, T0)
    return Model(users, [group.id, private.id], list(pushes),
                 {group.id: [], private.id: []}, in_group=set(users))


# Sends are the most common write; a leave or re-join now and then (a frequent one would
# leave most writes refused as NOT_A_MEMBER).
KINDS = ["send"] * 4 + ["edit"] * 2 + ["delete"] * 2 + ["read"] * 2 + ["toggle"]


def draw_operation(data: st.DataObject, m: Model, label: str) -> tuple[Any, ...]:
    """The next write, drawn knowing what exists so far, so that most writes hit real
    messages (an edit of one's own message, a read up to a recent id) and some miss."""
    return data.draw(st.sampled_from(KINDS).flatmap(lambda kind: operation(m, kind)), label)


def operation(m: Model, kind: str) -> st.SearchStrategy[tuple[Any, ...]]:
    user = st.integers(0, USERS - 1)
    if kind == "toggle":  # the user leaves the group, or is added back
        return st.tuples(st.just(kind), user)

    def message_id(chat_index: int) -> st.SearchStrategy[int]:
        known = m.ids[m.chats[chat_index]]
        any_id = st.integers(1, len(known) + 2)
        return st.one_of(st.sampled_from(known), any_id) if known else any_id

    def own_message(who: int, chat_index: int) -> st.SearchStrategy[int]:
        own = [msg.id for c, msg, _ in m.sent.values()
               if c == m.chats[chat_index] and msg.sender_id == m.users[who]]
        return st.sampled_from(own) if own else message_id(chat_index)

    def args(who: int, chat_index: int) -> st.SearchStrategy[tuple[Any, ...]]:
        if kind == "send":
            # a small random_id space makes resends (same chat) and reuse (other chat) likely
            reply = st.none() | st.none() | message_id(chat_index)
            return st.tuples(st.integers(0, 40), reply)
        if kind == "edit":
            return st.tuples(st.one_of(own_message(who, chat_index), message_id(chat_index)))
        if kind == "delete":
            return st.tuples(st.lists(message_id(chat_index), min_size=1, max_size=3),
                             st.booleans())
        return st.tuples(st.one_of(message_id(chat_index), st.integers(0, 40)))

    return st.tuples(user, st.sampled_from([GROUP, PRIVATE])).flatmap(
        lambda uc: args(*uc).map(lambda rest: (kind, uc[0], uc[1], *rest)))


async def apply(store: Store, m: Model, op: tuple[Any, ...], now: float) -> None:
    name, who = op[0], m.users[op[1]]
    try:
        if name == "send":
            chat_id, random_id, reply_to = m.chats[op[2]], op[3], op[4]
            message, pts, pushes = await store.send_message(who, chat_id, random_id,
                                                            f"{who}:{random_id}", now, reply_to)
            if (who, random_id) in m.sent:
                # A resend: the original message (as it stands now: it may have been
                # edited since), its pts, and nothing pushed twice.
                first_chat, first, first_pts = m.sent[(who, random_id)]
                assert (chat_id, message.id, message.date, pts) == (
                    first_chat, first.id, first.date, first_pts)
                assert pushes == []
            else:
                m.sent[(who, random_id)] = (chat_id, message, pts)
                m.ids[chat_id].append(message.id)
        elif name == "edit":
            _, pushes = await store.edit_message(who, m.chats[op[2]], op[3], f"edit {now}", now)
        elif name == "delete":
            _, _, pushes = await store.delete_messages(who, m.chats[op[2]], op[3], op[4])
        elif name == "read":
            _, _, pushes = await store.read_history(who, m.chats[op[2]], op[3])
        else:
            group = m.chats[GROUP]
            if who in m.in_group:
                _, pushes = await store.remove_member(who, group, who, now)
                m.in_group.discard(who)
            elif m.in_group:
                adder = next(u for u in m.users if u in m.in_group)
                role = (await store.get_chat(adder, group)).role
                if role == "member":
                    return  # nobody with the right to add is left; that is fine too
                _, pushes = await store.add_members(adder, group, [who], now, MAX_MEMBERS)
                m.in_group.add(who)
            else:
                return
    except PigeonError as exc:
        assert exc.code in ALLOWED[name], f"{op}: unexpected {exc!r}"
        if name == "send" and exc.code == "RANDOM_ID_DUPLICATE":
            assert m.sent[(who, op[3])][0] != m.chats[op[2]]
        return
    m.pushes += pushes


async def check(store: Store, m: Model) -> None:
    for uid in m.users:
        expected = pushed_to(m.pushes, uid)
        assert [u.pts for u in expected] == list(range(1, len(expected) + 1))
        diff = await full_difference(store, uid)
        assert [key(u) for u in diff] == [key(u) for u in expected]
        assert (await store.get_state(uid)).pts == len(expected)
        # Paging through the same sequence a few at a time yields the same.
        assert await full_difference(store, uid, limit=4) == diff
    for chat_id, ids in m.ids.items():
        assert ids == list(range(1, len(ids) + 1))
        for uid in m.users:
            try:
                history = [msg.id for msg in await store.history(uid, chat_id, None, 100)]
            except PigeonError as exc:
                assert exc.code == "NOT_A_MEMBER"
                continue
            assert history == sorted(history, reverse=True)
            assert set(history) <= set(ids)


# Each example opens its own store (hence the function-scoped fixture is fine: it is a
# factory). The explain phase is left out: on a failure it replays hundreds of examples, each
# with a fresh database, for little gain over the shrunk example it prints anyway.
@settings(max_examples=40, deadline=None,
          phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
async def test_random_interleavings_keep_sequences_dense(
    store_factory: StoreFactory, data: st.DataObject
) -> None:
    async with store_factory() as store:
        model = await setup(store)
        for i in range(data.draw(st.integers(5, 35), label="length")):
            await apply(store, model, draw_operation(data, model, f"op {i}"), T0 + i)
        await check(store, model)
