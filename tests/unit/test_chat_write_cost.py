"""Issue 8, deliverable 2: a message to a 10,000-member chat written on the chat's stream
costs one write, not 10,000. Rows are counted by SQLite on the writer connection."""

from __future__ import annotations

from pathlib import Path

from pigeon.store import ChatPush, SqliteStore
from pigeon.testing_crowds import NOW, crowd, rows_written

MEMBERS = 10_000


async def test_a_message_to_10000_members_is_one_item_on_a_chat_stream(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "pigeon.db")
    await store.open()
    try:
        regular = await crowd(store, MEMBERS, large=False)
        large = await crowd(store, MEMBERS, large=True, phone_base=MEMBERS)
        (_, _, fanned), before = await rows_written(
            store, store.send_message(regular.owner, regular.chat_id, 1, "hello", NOW))
        (_, pts, pushes), after = await rows_written(
            store, store.send_message(large.owner, large.chat_id, 2, "hello", NOW))
    finally:
        await store.close()
    # Before: a row in the log and a pts bump for every member (the sender's too).
    assert sum(len(p.targets) for p in fanned) == MEMBERS
    assert before >= 2 * MEMBERS
    # After: one stream item and its stream's head, whatever the size. The other rows are
    # the message's own in any chat: the message, the chat's last id, the sender's read
    # mark, the replay guard.
    (push,) = pushes
    assert isinstance(push, ChatPush) and push.targets == [] and pts == 0
    assert after == 4 + 2, f"{after} rows for one message to a large chat"
