"""Issue 7, finding 1: someone who left a group, or was removed from it, must not read what
was written there afterwards through the update log (``updates.get_difference`` from pts 0).

An update carries what its recipient was entitled to when it was issued: a message edited
after its recipient's departure comes back as a tombstone (text withheld), at its pts, so
that the sequence stays gap-free for the SDK.
"""

from __future__ import annotations

from pigeon.client import Client
from pigeon.protocol import methods as m
from pigeon.protocol.updates import EditMessage, NewMessage
from pigeon.testing import login


async def difference_from_zero(client: Client) -> list:
    out = []
    pts = 0
    while True:
        diff = await client.call("updates.get_difference", m.GetDifference(pts=pts))
        out += diff.updates
        if not diff.more:
            assert [u.pts for u in out] == list(range(1, len(out) + 1))  # no hole
            return out
        pts = diff.state.pts


def texts_of(updates: list, message_id: int) -> list[str]:
    return [u.message.text for u in updates
            if isinstance(u, (NewMessage, EditMessage)) and u.message.id == message_id]


async def departed_member_reads(server, phone, depart) -> list:
    """Owner and Bob share a group; Bob departs (``depart``), then the owner edits."""
    owner = await login(server, phone(), "Owner")
    bob = await login(server, phone(), "Bob")
    try:
        group = await owner.chats.create_group("Board", [bob.profile.user_id])
        await owner.messages.send(group.id, "the plan")            # message 1
        await owner.messages.send(group.id, "minutes")             # message 2
        await owner.messages.edit(group.id, 2, "minutes, final")   # while Bob is in: his
        await depart(owner, bob, group.id)
        await owner.messages.edit(group.id, 1, "the secret plan")  # after: not his
        await owner.messages.edit(group.id, 2, "minutes, redacted")
        await owner.messages.send(group.id, "after he went")       # message 3
        return await difference_from_zero(bob)
    finally:
        await owner.close()
        await bob.close()


async def removed(owner: Client, bob: Client, chat_id: int) -> None:
    await owner.chats.remove_member(chat_id, bob.profile.user_id)


async def left(owner: Client, bob: Client, chat_id: int) -> None:
    await bob.chats.leave(chat_id)


async def test_removed_member_does_not_read_edits_made_after_removal(server, phone):
    updates = await departed_member_reads(server, phone, removed)
    everything = repr(updates)
    assert "secret plan" not in everything and "redacted" not in everything
    assert "after he went" not in everything
    # What he saw while he was in is still his, and every pts is still there.
    (first,) = [u for u in updates if isinstance(u, NewMessage) and u.message.id == 1]
    assert first.message.deleted and first.message.text == ""
    assert set(texts_of(updates, 2)) <= {"minutes", "minutes, final", ""}


async def test_member_who_left_does_not_read_edits_made_after_leaving(server, phone):
    updates = await departed_member_reads(server, phone, left)
    everything = repr(updates)
    assert "secret plan" not in everything and "redacted" not in everything
    assert "after he went" not in everything


async def test_edits_made_while_a_member_stay_readable_after_leaving(server, phone):
    owner = await login(server, phone(), "Owner")
    bob = await login(server, phone(), "Bob")
    try:
        group = await owner.chats.create_group("Club", [bob.profile.user_id])
        await owner.messages.send(group.id, "draft")
        await owner.messages.edit(group.id, 1, "final")
        await bob.chats.leave(group.id)
        assert set(texts_of(await difference_from_zero(bob), 1)) == {"final"}
    finally:
        await owner.close()
        await bob.close()


async def test_rejoined_member_does_not_read_edits_to_the_earlier_period(server, phone):
    owner = await login(server, phone(), "Owner")
    bob = await login(server, phone(), "Bob")
    try:
        group = await owner.chats.create_group("Club", [bob.profile.user_id])
        await owner.messages.send(group.id, "old news")               # 1: first period
        await owner.chats.remove_member(group.id, bob.profile.user_id)
        await owner.messages.send(group.id, "while he was out")      # 2: never his
        await owner.chats.add_members(group.id, [bob.profile.user_id])
        await owner.messages.send(group.id, "welcome back")          # 3: second period
        await owner.messages.edit(group.id, 1, "old news, rewritten")
        await owner.messages.edit(group.id, 3, "welcome back!")
        updates = await difference_from_zero(bob)
        assert "rewritten" not in repr(updates) and "while he was out" not in repr(updates)
        assert texts_of(updates, 3)[-1] == "welcome back!"  # his to read
    finally:
        await owner.close()
        await bob.close()
