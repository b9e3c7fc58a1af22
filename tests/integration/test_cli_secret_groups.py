"""`pigeon group create --secret`, `send --to chat:ID` and `receive` in an end-to-end
encrypted group, as people type them (issue 9, deliverable 4). The accounts are made with
the SDK, in this process: each `pigeon` run costs seconds on a loaded machine."""

from __future__ import annotations

import json
import secrets

from cli_support import Follower, ok, one_error_line, pigeon

from pigeon.testing import login

PASSPHRASE = "correct horse battery staple"


async def test_secret_group_from_the_command_line(server, phone, tmp_path) -> None:
    alice, bob, carol = tmp_path / "alice", tmp_path / "bob", tmp_path / "carol"
    owner = await login(server, phone(), "Alice", username="alice_sg", profile=alice)
    for profile, name in ((bob, "bob_sg"), (carol, "carol_sg")):
        member = await login(server, phone(), name.title(), username=name, profile=profile)
        chat = await member.chats.open_private(owner.profile.user_id)  # type: ignore[arg-type]
        await member.messages.send(chat.id, "hi")  # they wrote to Alice: she may add them
        await member.devices.open(PASSPHRASE)      # keys made and published, in the vault
        await member.close()
    await owner.close()
    secret_file = tmp_path / "pass"
    secret_file.write_text(PASSPHRASE + "\n")
    env = {"PIGEON_PASSPHRASE_FILE": str(secret_file)}

    created = ok(alice, "group", "create", "Desk", "--secret", "--member", "@bob_sg",
                 "--member", "@carol_sg")
    assert "(end-to-end encrypted)" in created
    chat = created.split()[1]
    marker = f"marker-{secrets.token_hex(6)}"
    # The CLI encrypts by itself in a secret group (the passphrase from the global flag).
    ok(None, "--profile", str(alice), "--passphrase-file", str(secret_file), "send",
       "--to", chat, marker)
    # A wrong passphrase: one line, exit 1, and nothing is lost: the next receive shows it.
    wrong = tmp_path / "wrong"
    wrong.write_text("not it")
    result = pigeon(bob, "receive", "--json", env={"PIGEON_PASSPHRASE_FILE": str(wrong)})
    assert result.returncode == 1 and "wrong passphrase" in one_error_line(result)
    lines = [json.loads(line) for line in ok(bob, "receive", "--json", env=env).splitlines()]
    [got] = [line for line in lines if line.get("secret")]
    assert (got["text"], got["sender_username"], got["ttl"]) == (marker, "alice_sg", None)
    with Follower(bob, "--json", env=env) as follower:  # decrypts as messages come
        ok(alice, "send", "--to", chat, f"{marker} again", env=env)
        line = json.loads(follower.wait_for(f"{marker} again"))
        assert line["secret"] is True and "state" not in line
        assert follower.stop() == 130
    # Without a passphrase, receive says what it cannot read rather than dropping it.
    locked = [json.loads(line) for line in ok(carol, "receive", "--json").splitlines()
              if '"secret": true' in line]
    assert [(m["state"], m["text"]) for m in locked] == [("locked", None)] * 2
    assert "end-to-end encrypted" in ok(carol, "chats")
    shown = ok(carol, "history", chat, env=env)
    assert f"[secret] [{chat} #" in shown and marker in shown
    for profile in (alice, bob, carol):
        for path in profile.rglob("*"):
            if path.is_file():
                assert marker.encode() not in path.read_bytes(), path


async def test_a_follower_and_sends_share_one_profile_under_its_e2e_lock(
        server, phone, tmp_path) -> None:
    """`receive --follow` holds the profile's end-to-end state only per batch: a `send` to
    the group from the same profile gets in, and what each process saved (the group keys,
    the Olm sessions) is what the other reads next: nothing becomes unreadable."""
    alice_dir = tmp_path / "alice"
    alice = await login(server, phone(), "Alice", username="alice_fl", profile=alice_dir)
    bob = await login(server, phone(), "Bob", username="bob_fl", profile=tmp_path / "bob")
    try:
        chat = await bob.chats.open_private(alice.profile.user_id)  # type: ignore[arg-type]
        await bob.messages.send(chat.id, "hi")
        for client in (alice, bob):
            await client.devices.open(PASSPHRASE)
        group = await alice.secret_groups.create("Desk", [bob.profile.user_id])  # type: ignore[list-item]
    finally:
        await alice.close()
    secret_file = tmp_path / "pass"
    secret_file.write_text(PASSPHRASE)
    env = {"PIGEON_PASSPHRASE_FILE": str(secret_file)}
    ref = f"chat:{group.id}"
    marker = f"marker-{secrets.token_hex(6)}"
    try:
        with Follower(alice_dir, "--json", env=env) as follower:
            ok(alice_dir, "send", "--to", ref, f"{marker} one", env=env)  # not PROFILE_BUSY
            await bob.inbox.receive()
            await bob.secret_groups.send(group.id, f"{marker} bob")
            line = json.loads(follower.wait_for(f"{marker} bob"))
            assert line["secret"] is True and line["ttl"] is None
            ok(alice_dir, "send", "--to", ref, f"{marker} two", env=env)
            assert follower.stop() == 130
        await bob.inbox.receive()
        assert [m.text for m in reversed(await bob.secret_groups.history(group.id))] == [
            f"{marker} one", f"{marker} bob", f"{marker} two"]
        shown = ok(alice_dir, "history", ref, env=env)
        for text in ("one", "bob", "two"):
            assert f"{marker} {text}" in shown
        assert "cannot decrypt" not in shown and "waiting for its key" not in shown
    finally:
        await bob.close()
