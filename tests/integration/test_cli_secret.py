"""The secret-chat CLI as a person runs it (issue 9, deliverable 8): `secret start`, `send
--secret [--ttl]`, `receive [--json] [--follow]`, `history --secret`, `secret ttl`, `secret
list`, and the passphrase from a file, the environment, or refused in one line."""

from __future__ import annotations

import json

from cli_support import Follower, ok, one_error_line, pigeon, sign_up

PASSPHRASE = "tr0ub4dor & 3"


def test_secret_chat_tour(server, phone, tmp_path):
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    sign_up(server, alice, phone(), "Alice", "alice_sc")
    sign_up(server, bob, phone(), "Bob", "bob_sc")
    ok(alice, "send", "--to", "@bob_sc", "hello")
    ok(bob, "send", "--to", "@alice_sc", "hi")  # contacts now: envelopes may flow
    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    env = {"PIGEON_PASSPHRASE_FILE": str(secret)}
    # Bob's device gets its keys by the environment, Alice's by the flag.
    assert pigeon(bob, "secret", "list").returncode == 1  # no passphrase, no terminal
    assert "no secret chats" in ok(bob, "secret", "list", env=env)
    flag = ("--passphrase-file", str(secret))
    line = ok(None, "--profile", str(alice), *flag, "secret", "start", "@bob_sc")
    chat = line.split()[2]
    assert chat.startswith("secret:")
    ok(None, "--profile", str(alice), *flag, "send", "--secret", "--to", "@bob_sc",
       "--ttl", "30s", "the eagle lands")
    out = ok(bob, "receive", "--json", env=env)
    lines = [json.loads(raw) for raw in out.splitlines()]
    secret_lines = [obj for obj in lines if obj.get("secret")]
    assert [(o["chat"], o["text"], o["ttl"]) for o in secret_lines] == [
        (chat, "the eagle lands", 30)]
    assert all(obj["secret"] is False for obj in lines if not obj.get("secret"))
    history = ok(bob, "history", "@alice_sc", "--secret", env=env)
    assert "the eagle lands" in history and "self-destructs 30 seconds" in history
    assert "30 seconds" in ok(bob, "secret", "ttl", "@alice_sc", "30s", env=env)
    assert chat in ok(alice, "secret", "list", env=env)
    with Follower(bob, env=env) as follower:
        ok(alice, "send", "--secret", "--to", chat, "pushed", env=env)
        # Alice's send read her inbox first: Bob's new default timer applies.
        assert "Alice (@alice_sc) [self-destructs 30 seconds after shown]: pushed" in \
            follower.wait_for("pushed")
        # Bob writes from another terminal while his follower waits: one process at a
        # time holds the device's keys, each taking what the other saved.
        ok(bob, "send", "--secret", "--to", chat, "from the other terminal", env=env)
        ok(alice, "send", "--secret", "--to", chat, "still read", env=env)
        assert "still read" in follower.wait_for("still read")
        follower.stop()
    assert "from the other terminal" in ok(alice, "receive", env=env)
    ok(alice, "send", "--secret", "--to", chat, "while away", env=env)
    # Bob's own send takes that from his inbox; his next receive still prints it.
    assert "no longer" in ok(bob, "secret", "ttl", chat, "off", env=env)
    ok(bob, "send", "--secret", "--to", "@alice_sc", "ok", env=env)
    assert "while away" in ok(bob, "receive", env=env)
    # Bad input: one line, exit 1 (a wrong passphrase) or 2 (a timer out of bounds).
    wrong = tmp_path / "wrong"
    wrong.write_text("not it")
    failed = pigeon(bob, "secret", "list", env={"PIGEON_PASSPHRASE_FILE": str(wrong)})
    assert failed.returncode == 1 and "[WRONG_PASSPHRASE]" in one_error_line(failed)
    bad = pigeon(alice, "send", "--secret", "--to", chat, "--ttl", "8d", "x", env=env)
    assert bad.returncode == 2 and "between 1 second and 1 week" in one_error_line(bad)
    assert pigeon(alice, "send", "--to", "@bob_sc", "--ttl", "5s", "x").returncode == 2
    none = pigeon(alice, "history", "secret:12345", env=env)
    assert none.returncode == 1 and "[SECRET_CHAT_NOT_FOUND]" in one_error_line(none)
