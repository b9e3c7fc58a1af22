"""Every verb the protocol has, from the command line (issue 11, "Verbs the protocol has and
the CLI lacks"): each one done, and each one refused to whoever may not."""

from __future__ import annotations

import json

from cli_support import ok, one_error_line, pigeon, second_device, sign_up


def history_texts(profile, chat: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [json.loads(x)["text"] for x in
            ok(profile, "history", chat, "--json", "--no-mark-read").splitlines()]


def test_edit_delete_and_forward(server, phone, tmp_path):
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    sign_up(server, alice, phone(), "Alice", "alice_v")
    sign_up(server, bob, phone(), "Bob", "bob_v")
    chat = ok(alice, "send", "--to", "@bob_v", "helo").split()[1]
    ok(alice, "send", "--to", chat, "second")
    assert ok(alice, "edit", chat, "#1", "hello").strip() == f"edited {chat} #1"
    assert "hello [edited]" not in ok(bob, "history", chat)  # the marker goes before the text
    assert "[edited]: hello" in ok(bob, "history", chat)
    # Only the author edits; the refusal is one line with its code, exit 1.
    refused = pigeon(bob, "edit", chat, "1", "bob's words")
    assert refused.returncode == 1 and one_error_line(refused).endswith("[NOT_AUTHOR]")
    assert ok(alice, "edit", chat, "2", "-", stdin="from a pipe\n").startswith("edited")
    assert history_texts(bob, chat) == ["hello", "from a pipe"]

    # Forwarded into a group, it says where it came from.
    # Alice wrote to Bob, so she may add him straight away.
    group = ok(alice, "group", "create", "Verbs", "--member", "@bob_v").split()[1]
    ok(alice, "send", "--to", group, "welcome")
    out = ok(bob, "forward", chat, "#1", "--to", group)
    assert out.strip() == f"forwarded {chat} #1 as {group} #2"
    assert "[forwarded]: hello" in ok(alice, "history", group)
    assert "[forwarded]" not in ok(bob, "receive")  # made here: not shown back (bug 8)

    # Deleted for oneself: gone for Bob only; for everyone: gone for both.
    assert ok(bob, "delete", chat, "2").strip() == f"deleted 1 message in {chat}"
    assert history_texts(bob, chat) == ["hello"]
    assert history_texts(alice, chat) == ["hello", "from a pipe"]
    # In a group only admins delete others' messages for everyone (in a private chat,
    # either person may).
    refused = pigeon(bob, "delete", group, "1", "--for-everyone")
    assert refused.returncode == 1 and one_error_line(refused).endswith("[NOT_ADMIN]")
    assert ok(alice, "delete", chat, "1", "2", "--for-everyone").strip() == \
        f"deleted 2 messages in {chat} for everyone"
    assert history_texts(alice, chat) == [] and history_texts(bob, chat) == []


def test_message_ids_are_checked_before_anything_is_sent(server, phone, tmp_path):
    alice = tmp_path / "alice"
    sign_up(server, alice, phone(), "Alice", "alice_x")
    for bad in ("0", "#", "x1", "²", "1_0", str(2**62 + 1), "-1"):
        result = pigeon(alice, "edit", "chat:1", "--", bad, "text")
        assert result.returncode == 2, (bad, result.stderr)
        assert "not a message id" in one_error_line(result)
    # A chat that is not one's own is refused by the server, not crashed on.
    outsider = pigeon(alice, "read", "chat:999999")
    assert outsider.returncode == 1 and one_error_line(outsider).endswith("[NOT_A_MEMBER]")


def test_read_marks_a_chat_read_up_to_a_message(server, phone, tmp_path):
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    sign_up(server, alice, phone(), "Alice", "alice_rd")
    sign_up(server, bob, phone(), "Bob", "bob_rd")
    chat = ok(alice, "send", "--to", "@bob_rd", "one").split()[1]
    ok(alice, "send", "--to", chat, "two")
    ok(alice, "send", "--to", chat, "three")
    assert ok(bob, "read", chat, "--up-to", "#1").strip() == f"read {chat} up to #1; 2 unread"
    assert "[2 unread]" in ok(bob, "chats")
    assert ok(bob, "read", chat).strip() == f"read {chat} up to #3; 0 unread"
    assert "unread]" not in ok(bob, "chats")


def test_group_rename_members_promote_demote(server, phone, tmp_path):
    alice, bob, carol = tmp_path / "alice", tmp_path / "bob", tmp_path / "carol"
    sign_up(server, alice, phone(), "Alice", "alice_g")
    sign_up(server, bob, phone(), "Bob", "bob_g")
    sign_up(server, carol, phone(), "Carol", "carol_g")
    created = ok(alice, "group", "create", "Old", "--member", "@bob_g", "--member", "@carol_g")
    group = created.split()[1]
    if "invited" in created:  # as the server's default privacy setting has it
        for invitee in (bob, carol):
            ok(invitee, "group", "accept", group)
    members = ok(bob, "group", "members", group).splitlines()
    assert [line.split()[-1] for line in members] == ["owner", "member", "member"]
    assert "Alice (@alice_g)" in members[0]

    # A plain member may neither rename nor promote.
    for refused in (pigeon(bob, "group", "rename", group, "Mine"),
                    pigeon(bob, "group", "promote", group, "@carol_g")):
        assert refused.returncode == 1 and one_error_line(refused).endswith("[NOT_ADMIN]")
    assert ok(alice, "group", "promote", group, "@bob_g").strip() == \
        f"@bob_g is now an admin of {group}"
    assert ok(bob, "group", "rename", group, "New").strip() == f"{group} is now 'New'"
    assert "New (group, 3 members" in ok(carol, "chats")
    hidden = pigeon(alice, "group", "rename", group, "New\x1b[2J")  # refused, and said so
    assert hidden.returncode == 1 and "\\x1b" in one_error_line(hidden)
    # Only the owner changes roles, even an admin may not.
    refused = pigeon(bob, "group", "promote", group, "@carol_g")
    assert refused.returncode == 1 and one_error_line(refused).endswith("[NOT_ADMIN]")
    ok(alice, "group", "demote", group, "@bob_g")
    assert ["owner", "member", "member"] == [
        line.split()[-1] for line in ok(carol, "group", "members", group).splitlines()]
    outsider = tmp_path / "dave"
    sign_up(server, outsider, phone(), "Dave", "dave_g")
    refused = pigeon(outsider, "group", "members", group)
    assert refused.returncode == 1 and one_error_line(refused).endswith("[NOT_A_MEMBER]")


def test_profile_name_privacy_and_logout(server, phone, tmp_path):
    alice, laptop = tmp_path / "alice", tmp_path / "laptop"
    number = phone()
    sign_up(server, alice, number, "Alice", "alice_p")
    second_device(server, laptop, number)
    assert ok(alice, "profile", "name", "Alice Liddell").strip() == \
        "your name is now Alice Liddell"
    assert ok(laptop, "whoami").startswith("Alice Liddell (@alice_p)")
    too_long = pigeon(alice, "profile", "name", "x" * 200)
    assert too_long.returncode == 1 and "Traceback" not in too_long.stderr

    assert ok(alice, "privacy", "phone-discoverable").strip() == "phone discoverable: off"
    assert ok(alice, "privacy", "phone-discoverable", "on").strip() == "phone discoverable: on"
    assert "(discoverable)" in ok(laptop, "whoami")
    ok(alice, "privacy", "phone-discoverable", "off")
    assert "(discoverable)" not in ok(laptop, "whoami")
    assert pigeon(alice, "privacy", "phone-discoverable", "maybe").returncode == 2

    assert len(ok(alice, "sessions", "list").splitlines()) == 2
    assert ok(laptop, "logout").startswith("logged out")
    assert len(ok(alice, "sessions", "list").splitlines()) == 1  # gone on the server too
    after = pigeon(laptop, "whoami")
    assert after.returncode == 1 and one_error_line(after).endswith("[AUTH_REQUIRED]")
    assert "token" not in json.loads((laptop / "profile.json").read_text()) or \
        json.loads((laptop / "profile.json").read_text())["token"] is None
