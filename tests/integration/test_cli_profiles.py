"""Profiles as people use them: shared by processes at once (issue 11, bug 1), and where
they live (bug 4)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from cli_support import Follower, ok, pigeon, received_texts, sign_up


def test_one_profile_shared_by_a_follower_and_30_sends(server, phone, tmp_path):
    """Issue 11, bug 1: every command saved through the same ``profile.tmp``, so a follower
    and sends on one profile crashed each other (FileNotFoundError on the rename), and sends
    whose messages were delivered exited 1."""
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    sign_up(server, alice, phone(), "Alice", "alice_p")
    sign_up(server, bob, phone(), "Bob", "bob_p")
    ok(alice, "send", "--to", "@bob_p", "first")
    with Follower(bob) as follower:
        follower.wait_for("first")
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(
                lambda i: pigeon(bob, "send", "--to", "@alice_p", f"note {i}"), range(30)))
        for result in results:
            assert result.returncode == 0, result.stderr
            assert result.stdout.startswith("sent chat:") and result.stderr == ""
        ok(alice, "send", "--to", "@bob_p", "last")
        follower.wait_for("last")
        # Sends from this device are not shown back to it (bug 8), not even while in flight.
        assert not any("note " in line for line in follower.lines), follower.lines
        assert follower.proc.poll() is None, follower.errors  # still following
        assert follower.stop() == 130
        assert not any("Traceback" in line or "Error" in line for line in follower.errors)
    texts = received_texts(ok(alice, "receive", "--json"))  # (and Bob's read receipts)
    assert sorted(texts) == sorted(f"note {i}" for i in range(30))  # each once
    again = ok(bob, "receive", "--json")
    assert "first" not in again and "last" not in again  # the follower's position was kept


def test_a_profile_name_lives_in_the_config_directory(server, phone, tmp_path):
    """Issue 11, bug 4: `--profile alice` wrote ./alice/profile.json, session token and all,
    into whatever directory one stood in (a git clone: untracked, committed by accident)."""
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / "xdg")}

    def run(*args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "pigeon", *args], cwd=work, env={
            **os.environ, **env}, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        return result.stdout

    number = phone()
    hint = run("--profile", "alice", "register", "--server", server.url, number)
    assert "Next: pigeon --profile alice verify CODE" in hint  # the hint keeps --profile
    run("--profile", "alice", "verify", server.code_for(number), "--name", "Alice")
    assert list(work.iterdir()) == []  # nothing in the current directory
    stored = home / "xdg" / "pigeon" / "profiles" / "alice" / "profile.json"
    assert json.loads(stored.read_text())["token"]
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    assert "Alice" in run("--profile", "alice", "whoami")

    listing = run("profiles").splitlines()
    assert [line.split()[0] for line in listing] == ["alice"]
    assert str(stored.parent) in listing[0] and "user 1" in listing[0]

    # A path (anything with a slash) is that directory; the default stays ~/.config/pigeon.
    run("--profile", "./here", "register", "--server", server.url, phone())
    assert (work / "here" / "profile.json").exists()
    without_xdg = {**env, "XDG_CONFIG_HOME": ""}
    result = subprocess.run([sys.executable, "-m", "pigeon", "register", "--server", server.url,
                             phone()], cwd=work, env={**os.environ, **without_xdg},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (home / ".config" / "pigeon" / "profile.json").exists()
    assert "Next: pigeon verify CODE" in result.stdout  # no --profile given, none in the hint
    listing = subprocess.run([sys.executable, "-m", "pigeon", "profiles"], cwd=work,
                             env={**os.environ, **without_xdg}, capture_output=True, text=True,
                             timeout=60).stdout.splitlines()
    assert [line.split()[0] for line in listing] == ["default"]
    # Set XDG_CONFIG_HOME later, and the default profile made before is still found.
    assert [line.split()[0] for line in run("profiles").splitlines()] == ["default", "alice"]
