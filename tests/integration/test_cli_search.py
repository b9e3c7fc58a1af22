"""`pigeon search` (issue 11): the messages this device has, in an FTS5 archive in the
profile, kept true through edits and deletions, written by several processes at once."""

from __future__ import annotations

import json
import stat
from concurrent.futures import ThreadPoolExecutor

from cli_support import Follower, ok, pigeon, second_device, sign_up


def found(profile, *args: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [json.loads(x)["text"] for x in ok(profile, "search", "--json", *args).splitlines()]


def test_search_finds_what_this_device_has_and_follows_edits(server, phone, tmp_path):
    alice, bob, laptop = tmp_path / "alice", tmp_path / "bob", tmp_path / "laptop"
    sign_up(server, alice, phone(), "Alice", "alice_s")
    number = phone()
    sign_up(server, bob, number, "Bob", "bob_s")
    second_device(server, laptop, number)
    assert ok(bob, "search", "fox") == ""  # nothing kept yet, and nothing made
    assert not (bob / "messages.db").exists()
    chat = ok(alice, "send", "--to", "@bob_s", "The quick brown Fox").split()[1]
    ok(alice, "send", "--to", chat, "a lazy dog, café au lait")
    ok(bob, "receive")
    assert found(bob, "fox") == ["The quick brown Fox"]        # any case
    assert found(bob, "QUI BRO") == ["The quick brown Fox"]    # every word, as a prefix
    assert found(bob, "cafe") == ["a lazy dog, café au lait"]  # accents do not matter
    assert found(bob, "fox", "--chat", "@alice_s") == ["The quick brown Fox"]
    assert found(bob, "fox", "--chat", "chat:999") == []
    assert found(alice, "lazy") == ["a lazy dog, café au lait"]  # kept by `send`
    assert "you: a lazy dog" in ok(alice, "search", "lazy")
    assert "Alice (@alice_s): The quick" in ok(bob, "search", "quick")
    for syntax in ('"', "AND", "(fox", "fox*", "NEAR(a b)", "-", "^x", "a:b"):
        assert pigeon(bob, "search", syntax).returncode == 0, syntax  # words, not a query
    # Edits and deletions reach the archive through `receive`.
    ok(alice, "edit", chat, "1", "a slow turtle")
    ok(alice, "delete", chat, "2", "--for-everyone")
    ok(bob, "receive")
    assert found(bob, "fox") == [] and found(bob, "turtle") == ["a slow turtle"]
    assert found(bob, "lazy") == []
    assert found(alice, "turtle") == ["a slow turtle"] and found(alice, "lazy") == []
    # The other device has only what it was shown: `history` keeps it too.
    assert found(laptop, "turtle") == []
    ok(laptop, "history", chat, "--no-mark-read")
    assert found(laptop, "turtle") == ["a slow turtle"]
    mode = stat.S_IMODE((bob / "messages.db").stat().st_mode)
    assert mode & 0o077 == 0, oct(mode)  # what people wrote, for this user only


def test_several_processes_write_one_archive(server, phone, tmp_path):
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    sign_up(server, alice, phone(), "Alice", "alice_c")
    sign_up(server, bob, phone(), "Bob", "bob_c")
    ok(alice, "send", "--to", "@bob_c", "first")
    with Follower(bob) as follower:
        follower.wait_for("first")
        with ThreadPoolExecutor(4) as pool:
            sends = list(pool.map(lambda i: pigeon(bob, "send", "--to", "@alice_c",
                                                   f"note{i} from bob"), range(12)))
            theirs = list(pool.map(lambda i: pigeon(alice, "send", "--to", "@bob_c",
                                                    f"reply{i} from alice"), range(12)))
        for result in sends + theirs:
            assert result.returncode == 0 and result.stderr == "", result.stderr
        ok(alice, "send", "--to", "@bob_c", "last")
        follower.wait_for("last")
        assert follower.stop() == 130
        assert not any("archive" in x or "Traceback" in x for x in follower.errors)
    assert sorted(found(bob, "from bob", "--limit", "100")) == sorted(
        f"note{i} from bob" for i in range(12))
    assert sorted(found(bob, "from alice", "--limit", "100")) == sorted(
        f"reply{i} from alice" for i in range(12))
