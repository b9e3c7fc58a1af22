"""Contract: a member who leaves a group, or is removed, or rejoins later, is served by the
update log only what they were entitled to when each update was issued (issue 7, finding 1).

The log refers to message rows; an edit made after someone left must not reach them through
an old ``new_message``/``edit_message`` update. Such an update keeps its pts (a client needs
every one) and carries a tombstone instead: ``deleted``, no text, no forward header.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from contract_support import MAX_MEMBERS, T0, StoreFactory, full_difference, make_users
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pigeon.protocol import updates as up
from pigeon.protocol.errors import PigeonError
from pigeon.protocol.types import FwdFrom
from pigeon.store import Store


def message_updates(updates: list[Any], message_id: int | None = None) -> list[Any]:
    return [u for u in updates if isinstance(u, (up.NewMessage, up.EditMessage))
            and (message_id is None or u.message.id == message_id)]


async def difference(store: Store, user_id: int) -> list[Any]:
    updates = await full_difference(store, user_id)
    assert [u.pts for u in updates] == list(range(1, len(updates) + 1))  # nothing withheld
    return updates


async def test_an_edit_after_removal_is_withheld_from_the_removed(store: Store) -> None:
    a, b = await make_users(store, 2)
    group, _ = await store.create_group(a, "G", [b], T0, MAX_MEMBERS)
    await store.send_message(a, group.id, 1, "plan", T0)
    await store.edit_message(a, group.id, 1, "plan v2", T0 + 1)  # b was there: his to read
    await store.remove_member(a, group.id, b, T0 + 2)
    await store.edit_message(a, group.id, 1, "secret plan", T0 + 3)
    updates = await difference(store, b)
    shown = message_updates(updates, 1)
    assert [type(u) for u in shown] == [up.NewMessage, up.EditMessage]
    for u in shown:
        assert u.message.deleted and u.message.text == "" and u.message.fwd_from is None
        assert (u.message.sender_id, u.message.date) == (a, T0)
    assert "secret plan" not in repr(updates)  # (Chat.secret, a field, is not the text)
    # The author, still a member, reads the live row.
    assert message_updates(await difference(store, a), 1)[-1].message.text == "secret plan"


async def test_what_was_edited_before_leaving_stays_readable(store: Store) -> None:
    a, b = await make_users(store, 2)
    group, _ = await store.create_group(a, "G", [b], T0, MAX_MEMBERS)
    await store.send_message(a, group.id, 1, "one", T0)
    await store.send_message(a, group.id, 2, "two", T0)
    await store.edit_message(a, group.id, 1, "one, edited", T0 + 1)
    await store.remove_member(b, group.id, b, T0 + 2)  # b leaves
    await store.edit_message(a, group.id, 2, "two, edited later", T0 + 3)
    updates = await difference(store, b)
    assert {u.message.text for u in message_updates(updates, 1)} == {"one, edited"}
    (two,) = message_updates(updates, 2)
    assert two.message.deleted and two.message.text == ""


async def test_a_rejoined_member_reads_neither_edits_to_the_old_period_nor_the_gap(
    store: Store,
) -> None:
    a, b = await make_users(store, 2)
    group, _ = await store.create_group(a, "G", [b], T0, MAX_MEMBERS)
    await store.send_message(a, group.id, 1, "first period", T0)              # id 1
    await store.remove_member(a, group.id, b, T0 + 1)
    await store.send_message(a, group.id, 2, "while b was out", T0 + 2)       # id 2
    await store.add_members(a, group.id, [b], T0 + 3, MAX_MEMBERS)
    await store.send_message(a, group.id, 3, "second period", T0 + 4)         # id 3
    await store.edit_message(a, group.id, 1, "first period, rewritten", T0 + 5)
    await store.edit_message(a, group.id, 3, "second period, edited", T0 + 6)
    updates = await difference(store, b)
    assert "rewritten" not in repr(updates) and "while b was out" not in repr(updates)
    assert message_updates(updates, 2) == []
    assert all(u.message.deleted for u in message_updates(updates, 1))
    assert message_updates(updates, 3)[-1].message.text == "second period, edited"
    # Leaving again ends the second period: a later edit is withheld like the first.
    await store.remove_member(b, group.id, b, T0 + 7)
    await store.edit_message(a, group.id, 3, "second period, after", T0 + 8)
    updates = await difference(store, b)
    assert "after" not in repr(updates)
    assert all(u.message.deleted for u in message_updates(updates, 3))


async def test_deleted_for_everyone_after_leaving_shows_no_text(store: Store) -> None:
    a, b = await make_users(store, 2)
    group, _ = await store.create_group(a, "G", [b], T0, MAX_MEMBERS)
    await store.send_message(a, group.id, 1, "regret", T0)
    await store.remove_member(b, group.id, b, T0 + 1)
    await store.delete_messages(a, group.id, [1], for_everyone=True)
    (shown,) = message_updates(await difference(store, b), 1)
    assert shown.message.deleted and shown.message.text == ""


async def test_a_forward_after_leaving_is_withheld_with_its_header(store: Store) -> None:
    a, b = await make_users(store, 2)
    group, _ = await store.create_group(a, "G", [b], T0, MAX_MEMBERS)
    origin = FwdFrom(sender_id=a, chat_id=group.id, message_id=1, date=T0)
    await store.send_message(a, group.id, 1, "fwd", T0, fwd_from=origin)
    await store.remove_member(a, group.id, b, T0 + 1)
    await store.edit_message(a, group.id, 1, "fwd, edited", T0 + 2)
    (shown,) = message_updates(await difference(store, b), 1)
    assert shown.message.deleted and shown.message.fwd_from is None


async def test_empty_periods_of_membership_are_fine(store: Store) -> None:
    """Joining and leaving again and again with no message in between records nothing that
    could collide, and the owner leaving (the group passes on) is a departure like any."""
    a, b = await make_users(store, 2)
    group, _ = await store.create_group(a, "G", [b], T0, MAX_MEMBERS)
    for i in range(3):
        await store.remove_member(a, group.id, b, T0 + i)
        await store.add_members(a, group.id, [b], T0 + i, MAX_MEMBERS)
    await store.send_message(a, group.id, 1, "hello", T0 + 5)
    await store.remove_member(a, group.id, a, T0 + 6)  # the owner leaves; b inherits
    updates = await difference(store, a)
    assert {u.message.text for u in message_updates(updates, 1)} == {"hello"}


# -- by property ---------------------------------------------------------------------------
@dataclass
class Seen:
    """For each user, every text of every message that existed while they could see it."""

    users: list[int]
    group: int
    history_from: dict[int, int]                      # current members only
    texts: dict[int, dict[int, set[str]]] = field(default_factory=dict)
    live: dict[int, str] = field(default_factory=dict)
    authors: dict[int, int] = field(default_factory=dict)
    last_id: int = 0

    def witnessed(self, message_id: int, text: str) -> None:
        self.live[message_id] = text
        for uid, since in self.history_from.items():
            if message_id > since:
                self.texts.setdefault(uid, {}).setdefault(message_id, set()).add(text)


OPS = st.lists(st.tuples(st.sampled_from(["send", "send", "edit", "edit", "toggle", "wipe"]),
                         st.integers(0, 2), st.integers(1, 12)), min_size=3, max_size=30)


@settings(max_examples=30, deadline=None,
          phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
async def test_no_update_ever_shows_a_text_its_recipient_did_not_witness(
    store_factory: StoreFactory, ops: list[tuple[str, int, int]]
) -> None:
    async with store_factory() as store:
        users = await make_users(store, 3)
        owner = users[0]  # stays, and re-adds whoever left
        group, _ = await store.create_group(owner, "G", users[1:], T0, MAX_MEMBERS)
        seen = Seen(users, group.id, {u: 0 for u in users})
        for step, (kind, who_index, target) in enumerate(ops):
            who, now = users[who_index], T0 + step
            if kind == "toggle" and who != owner:
                if who in seen.history_from:
                    await store.remove_member(who, group.id, who, now)
                    del seen.history_from[who]
                else:
                    await store.add_members(owner, group.id, [who], now, MAX_MEMBERS)
                    seen.history_from[who] = seen.last_id
            elif kind == "send" and who in seen.history_from:
                message, _, _ = await store.send_message(who, group.id, step, f"s{step}", now)
                seen.last_id = message.id
                seen.authors[message.id] = who
                seen.witnessed(message.id, message.text)
            elif kind == "edit" and target <= seen.last_id:
                author = seen.authors[target]  # only the author may: make most edits count
                try:
                    await store.edit_message(author, group.id, target, f"e{step}", now)
                except PigeonError as exc:
                    assert exc.code in ("NOT_A_MEMBER", "MESSAGE_NOT_FOUND")
                else:
                    seen.witnessed(target, f"e{step}")
            elif kind == "wipe" and target <= seen.last_id:
                await store.delete_messages(owner, group.id, [target], for_everyone=True)
                seen.witnessed(target, "")
        for uid in users:
            for u in message_updates(await difference(store, uid)):
                msg = u.message
                if msg.deleted:
                    assert msg.text == "" and msg.fwd_from is None
                    continue
                assert msg.text in seen.texts[uid][msg.id], (uid, msg)
                if uid in seen.history_from and msg.id > seen.history_from[uid]:
                    assert msg.text == seen.live[msg.id]  # a member reads the live row
