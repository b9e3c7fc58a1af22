"""What `pigeon receive` shows, and what it leaves behind (issue 11, bugs 7 and 8)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

from cli_support import TIMEOUT, ok, received_texts, second_device, sign_up


def unread(profile, chat: str) -> str:  # type: ignore[no-untyped-def]
    line = next(x for x in ok(profile, "chats").splitlines() if x.startswith(chat + " "))
    return line.split("[", 1)[1].split("]")[0] if "unread]" in line else "0 unread"


def test_receive_marks_what_it_printed_as_read(server, phone, tmp_path):
    """Bug 7: `chats` showed `[65 unread]` after everything had been received."""
    alice, bob, laptop = tmp_path / "alice", tmp_path / "bob", tmp_path / "laptop"
    sign_up(server, alice, phone(), "Alice", "alice_r")
    number = phone()
    sign_up(server, bob, number, "Bob", "bob_r")
    second_device(server, laptop, number)
    chat = ok(alice, "send", "--to", "@bob_r", "one").split()[1]
    ok(alice, "send", "--to", "@bob_r", "two")
    assert unread(bob, chat) == "2 unread"
    assert len(ok(laptop, "receive", "--no-mark-read").splitlines()) == 2
    assert unread(bob, chat) == "2 unread"  # --no-mark-read: as it was
    assert len(ok(bob, "receive").splitlines()) == 2
    assert unread(bob, chat) == "0 unread"
    ok(alice, "send", "--to", "@bob_r", "three")
    assert json.loads(ok(bob, "receive", "--json"))["text"] == "three"
    assert unread(bob, chat) == "0 unread"


def test_own_sends_from_this_device_are_not_shown_back(server, phone, tmp_path):
    """Bug 8: `receive` showed this device's own `send`s as if they had arrived."""
    alice, bob, laptop = tmp_path / "alice", tmp_path / "bob", tmp_path / "laptop"
    sign_up(server, alice, phone(), "Alice", "alice_o")
    number = phone()
    sign_up(server, bob, number, "Bob", "bob_o")
    second_device(server, laptop, number)
    ok(bob, "send", "--to", "@alice_o", "from bob's phone")
    ok(alice, "send", "--to", "@bob_o", "from alice")
    # (Alice answering tells Bob she read his message: a line of its own, typed "read".)
    assert received_texts(ok(bob, "receive", "--json")) == ["from alice"]
    # The account's other device shows both: the send was not made there.
    assert received_texts(ok(laptop, "receive", "--json")) == [
        "from bob's phone", "from alice"]


def on_a_terminal(profile, *args: str) -> str:  # type: ignore[no-untyped-def]
    """Run `pigeon` with its standard output on a pseudo-terminal; what it printed there."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "pigeon", "--profile", str(profile), *args],
                            stdout=slave, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the other end closed
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(TIMEOUT) == 0, proc.stderr.read() if proc.stderr else None
    os.close(master)
    return out.decode()


def test_an_empty_receive_says_so_on_a_terminal_only(server, phone, tmp_path):
    """Bug 8: an empty `receive` printed nothing, which on a terminal looks like a hang or a
    failure; piped or with --json, nothing is still what a script wants."""
    alice = tmp_path / "alice"
    sign_up(server, alice, phone(), "Alice", "alice_e")
    assert on_a_terminal(alice, "receive").strip() == "no new messages"
    assert on_a_terminal(alice, "receive", "--json") == ""
    assert ok(alice, "receive") == ""
