"""`pigeon mute`/`unmute`, `pin`/`unpin` (issue 11): a mute is the user's own and reaches all
their devices; a pin is the chat's and reaches every member; `chats` shows both."""

from __future__ import annotations

import json

from cli_support import ok, one_error_line, pigeon, second_device, sign_up


def chat_line(profile, chat: str) -> str:  # type: ignore[no-untyped-def]
    return next(x for x in ok(profile, "chats").splitlines() if x.startswith(chat + " "))


def test_mute_reaches_every_device_of_its_user_only(server, phone, tmp_path):
    alice, bob, laptop = tmp_path / "alice", tmp_path / "bob", tmp_path / "laptop"
    sign_up(server, alice, phone(), "Alice", "alice_m")
    number = phone()
    sign_up(server, bob, number, "Bob", "bob_m")
    second_device(server, laptop, number)
    chat = ok(alice, "send", "--to", "@bob_m", "hi").split()[1]
    ok(laptop, "receive")
    assert ok(bob, "mute", chat, "--for", "8h").startswith(f"muted {chat} until ")
    assert "[muted until " in chat_line(laptop, chat)
    assert "muted" not in chat_line(alice, chat)  # Bob's mute is Bob's business
    events = [json.loads(x) for x in ok(laptop, "receive", "--json").splitlines()]
    assert [x["type"] for x in events] == ["chat"] and events[0]["muted_until"] > 0
    assert ok(bob, "mute", chat).strip() == f"muted {chat}"
    assert "[muted]" in chat_line(laptop, chat)
    assert ok(laptop, "unmute", chat).strip() == f"unmuted {chat}"
    assert "muted" not in chat_line(bob, chat)
    assert "[not muted]" in ok(bob, "receive")
    for bad in ("0s", "2y", "8", "h", "400d", "-1h"):
        refused = pigeon(bob, "mute", chat, "--for", bad)
        line = one_error_line(refused)
        assert refused.returncode == 2, bad
        assert "span of time" in line or "between a second and a year" in line, line
    stranger = tmp_path / "carol"
    sign_up(server, stranger, phone(), "Carol", "carol_m")
    refused = pigeon(stranger, "mute", chat)
    assert refused.returncode == 1 and one_error_line(refused).endswith("[NOT_A_MEMBER]")


def test_pin_is_the_chats_and_for_admins_in_groups(server, phone, tmp_path):
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    sign_up(server, alice, phone(), "Alice", "alice_n")
    sign_up(server, bob, phone(), "Bob", "bob_n")
    private = ok(alice, "send", "--to", "@bob_n", "hi").split()[1]  # Alice may add Bob now
    created = ok(alice, "group", "create", "Pins", "--member", "@bob_n")
    group = created.split()[1]
    if "invited" in created:
        ok(bob, "group", "accept", group)
    ok(bob, "send", "--to", group, "the rules")
    ok(bob, "receive")
    refused = pigeon(bob, "pin", group, "#1")
    assert refused.returncode == 1 and one_error_line(refused).endswith("[NOT_ADMIN]")
    missing = pigeon(alice, "pin", group, "#9")
    assert missing.returncode == 1 and one_error_line(missing).endswith("[MESSAGE_NOT_FOUND]")
    assert ok(alice, "pin", group, "#1").strip() == f"pinned #1 in {group}"
    assert "[pinned #1]" in chat_line(bob, group)
    assert f"[{group}] 'Pins': 2 members, you: member [pinned #1]" in ok(bob, "receive")
    assert ok(alice, "unpin", group).strip() == f"unpinned {group}"
    assert "pinned" not in chat_line(bob, group)
    # In a private chat either person pins; deleting the message for everyone unpins it.
    ok(bob, "pin", private, "1")
    assert "[pinned #1]" in chat_line(alice, private)
    ok(alice, "delete", private, "1", "--for-everyone")
    assert "pinned" not in chat_line(bob, private)
