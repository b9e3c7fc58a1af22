"""`pigeon receive` shows more than new messages (issue 11): edits, deletions, read receipts,
typing and membership changes on lines of their own, JSON objects with a "type"; replies
show what they answer; a plain message's JSON keeps exactly today's fields."""

from __future__ import annotations

import json

from cli_support import Follower, ok, second_device, sign_up

MESSAGE_FIELDS = {"chat", "id", "sender", "sender_name", "sender_username", "text", "date",
                  "secret"}


def test_receive_shows_every_kind_of_update(server, phone, tmp_path):
    alice, bob, laptop = tmp_path / "alice", tmp_path / "bob", tmp_path / "laptop"
    sign_up(server, alice, phone(), "Alice", "alice_ev")
    number = phone()
    sign_up(server, bob, number, "Bob", "bob_ev")
    second_device(server, laptop, number)
    chat = ok(alice, "send", "--to", "@bob_ev", "hello\x1b[2J bob").split()[1]
    with Follower(bob) as follower:
        follower.wait_for("hello")
        ok(alice, "typing", chat)
        assert follower.wait_for("is typing") == f"[{chat}] Alice (@alice_ev) is typing"
        ok(alice, "send", "--to", chat, "--reply-to", "1", "a reply")
        assert "(reply to #1: 'hello\\x1b[2J bob'): a reply" in follower.wait_for("a reply")
        ok(alice, "edit", chat, "2", "an edited reply")
        assert "[edited]: an edited reply" in follower.wait_for("an edited reply")
        ok(alice, "send", "--to", chat, "a mistake")
        ok(alice, "delete", chat, "3", "--for-everyone")
        assert follower.wait_for("deleted") == f"[{chat}] deleted #3 for everyone"
        ok(bob, "send", "--to", chat, "hi")  # from another process on the same profile
        ok(alice, "read", chat)
        assert follower.wait_for("read up to") == f"[{chat}] read up to #4"
        group = ok(alice, "group", "create", "Events", "--member", "@bob_ev").split()[1]
        # Alice wrote to Bob: he is added, or invited if the server's default says so.
        line = follower.wait_for(f"[{group}]")
        assert line == f"[{group}] 'Events': 2 members, you: member" or \
            line.startswith(f"[{group}] you are invited to 'Events' by user ")
        assert follower.stop() == 130
        assert not any("Traceback" in x for x in follower.errors), follower.errors

    # The other device, as JSON: one object a line; messages exactly as before (as they are
    # now: edited, and the deleted one left out).
    objects = [json.loads(x) for x in ok(laptop, "receive", "--json").splitlines()]
    messages = [x for x in objects if "type" not in x]
    assert [x["text"] for x in messages] == ["hello\x1b[2J bob", "an edited reply", "hi"]
    assert set(messages[0]) == MESSAGE_FIELDS and set(messages[1]) == MESSAGE_FIELDS | {"reply_to"}
    by_type = {x["type"]: x for x in objects if "type" in x}
    assert by_type["edit"]["text"] == "an edited reply" and by_type["edit"]["edited"] is True
    assert by_type["delete"] == {"type": "delete", "chat": int(chat[5:]), "ids": [3],
                                 "for_everyone": True}
    assert by_type["read"] == {"type": "read", "chat": int(chat[5:]), "up_to": 4}
    assert by_type["chat"]["title"] == "Events" and by_type["chat"]["kind"] == "group"
    assert "typing" not in by_type  # typing is for who is online, never stored
