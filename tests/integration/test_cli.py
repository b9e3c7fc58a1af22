"""The README's five-minute tour, run as a person would: `pigeon` commands in a shell."""

import json
import re
import subprocess
import sys


def pigeon(profile, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pigeon", "--profile", str(profile), *args],
                          input=stdin, capture_output=True, text=True, timeout=60)


def ok(profile, *args, stdin=None) -> str:
    result = pigeon(profile, *args, stdin=stdin)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def sign_up(server, profile, phone: str, name: str, username: str) -> None:
    assert "code is on its way" in ok(profile, "register", "--server", server.url, phone)
    ok(profile, "verify", server.code_for(phone), "--name", name)
    assert f"@{username}" in ok(profile, "username", "set", username)


def test_tour(server, phone, tmp_path):
    alice, bob, bob_laptop = tmp_path / "alice", tmp_path / "bob", tmp_path / "bob-laptop"
    pa, pb = phone(), phone()
    sign_up(server, alice, pa, "Alice", "alice_t")
    sign_up(server, bob, pb, "Bob", "bob_t")
    assert "Alice (@alice_t)" in ok(alice, "whoami")
    # Bob's second device logs in to the same account: the code goes to his first device,
    # as a message from the Pigeon service account (no SMS).
    assert "other logged-in devices" in ok(bob_laptop, "register", "--server", server.url, pb)
    notice = ok(bob, "receive")
    assert "Pigeon" in notice
    ok(bob_laptop, "verify", re.search(r"Login code: (\d{6})", notice)[1])

    assert ok(alice, "send", "--to", "@bob_t", "hello bob").startswith("sent chat:")
    ok(alice, "send", "--to", "@bob_t", "-", stdin="from a pipe\n")
    for device in (bob, bob_laptop):
        lines = [json.loads(x) for x in ok(device, "receive", "--json").splitlines()]
        assert [x["text"] for x in lines] == ["hello bob", "from a pipe"]
        assert {x["sender_username"] for x in lines} == {"alice_t"}
        assert [x["id"] for x in lines] == [1, 2] and all(x["chat"] and x["date"] for x in lines)
        assert ok(device, "receive", "--json") == ""  # nothing twice

    out = ok(alice, "group", "create", "Tour", "--member", "@bob_t")
    chat = out.split()[1]  # "created chat:N ..."
    ok(bob, "send", "--to", chat, "hello group")
    assert "hello group" in ok(alice, "receive")
    assert "Tour (group, 2 members, you: owner)" in ok(alice, "chats")
    assert "hello bob" in ok(bob, "history", "@alice_t")

    sessions = ok(bob, "sessions", "list").splitlines()
    assert len(sessions) == 2
    other = next(line for line in sessions if "this device" not in line).split()[0]
    ok(bob, "sessions", "terminate", other)
    cut = pigeon(bob_laptop, "whoami")
    assert cut.returncode == 1 and "log in again" in cut.stderr

    ok(alice, "group", "remove", chat, "@bob_t")
    refused = pigeon(bob, "send", "--to", chat, "am I still here?")
    assert refused.returncode == 1
    assert refused.stderr.strip().endswith("[NOT_A_MEMBER]") and "Traceback" not in refused.stderr


def test_register_by_sms_on_request(server, phone, tmp_path):
    number = phone()
    sign_up(server, tmp_path / "first", number, "Carol", "carol_t")
    second = tmp_path / "second"
    out = ok(second, "register", "--sms", "--server", server.url, number)
    assert "by SMS" in out
    ok(second, "verify", server.code_for(number))
    assert "Carol (@carol_t)" in ok(second, "whoami")


def test_exit_codes(server, phone, tmp_path):
    profile = tmp_path / "p"
    bad_phone = pigeon(profile, "register", "--server", server.url, "12345")
    assert bad_phone.returncode == 1 and "PHONE_INVALID" in bad_phone.stderr
    assert pigeon(profile, "no-such-verb").returncode == 2
    assert pigeon(profile, "send").returncode == 2
    unreachable = pigeon(profile, "register", "--server", "http://127.0.0.1:9", phone())
    assert unreachable.returncode == 3 and "unreachable" in unreachable.stderr
    assert "Traceback" not in bad_phone.stderr + unreachable.stderr
