"""Profiles as people use them: shared by processes at once (issue 11, bug 1), and where
they live (bug 4)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from cli_support import Follower, ok, pigeon, sign_up


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
    texts = [json.loads(line)["text"] for line in ok(alice, "receive", "--json").splitlines()]
    assert sorted(texts) == sorted(f"note {i}" for i in range(30))  # each once
    again = ok(bob, "receive", "--json")
    assert "first" not in again and "last" not in again  # the follower's position was kept
