"""`pigeon devices` and `pigeon devices verify` as two people run them, in two terminals, through
a real server process (issue 9, deliverable 6)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pigeon.client import Client
from pigeon.testing import login

from cli_support import TIMEOUT, Follower, ok, one_error_line, pigeon

pytestmark = pytest.mark.slow


def run_in_background(profile: Path, *args: str, env: dict[str, str],
                      stdin: str | None = None) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pigeon", "--profile", str(profile), *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **env})
    if stdin is not None:
        assert proc.stdin is not None
        proc.stdin.write(stdin)
        proc.stdin.flush()
    return proc


def finish(proc: subprocess.Popen[str]) -> tuple[int, list[dict], str]:  # type: ignore[type-arg]
    out, err = proc.communicate(timeout=TIMEOUT)
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return proc.returncode, events, err


PASSPHRASE = "correct horse battery staple"


async def signed_up(server, phone: str, name: str, username: str, profile: Path,  # type: ignore[no-untyped-def]
                    peer: Client | None = None) -> Client:
    """A profile the CLI then uses, signed up through the SDK (fast), keys published."""
    client = await login(server, phone, name, username=username, profile=profile)
    await client.devices.open(PASSPHRASE)
    return client


@pytest.fixture
async def people(server, phone, tmp_path):  # type: ignore[no-untyped-def]
    """Alice and Bob, contacts, each with a passphrase file and published device keys."""
    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    env = {"PIGEON_PASSPHRASE_FILE": str(secret)}
    alice, bob, bob_phone = tmp_path / "alice", tmp_path / "bob", phone()
    a = await signed_up(server, phone(), "Alice", "alice_v", alice)
    b = await signed_up(server, bob_phone, "Bob", "bob_v", bob)
    assert b.profile.user_id is not None
    chat = await a.chats.open_private(b.profile.user_id)  # contacts: envelopes may pass
    await a.messages.send(chat.id, "hi")
    await b.messages.send(chat.id, "hello")
    bob_device = b.profile.session_id
    await a.close()
    await b.close()
    return alice, bob, bob_phone, env, bob_device


def test_two_terminals_verify_each_other_and_the_listing_says_so(people):
    """Bob also has `receive --follow` running on the same profile: both hold the profile's
    e2e lock only per use, and whichever reads a step hands it on (the mailbox)."""
    alice, bob, _, env, bob_device = people
    with Follower(bob, "--json", env=env) as follower:
        responder = run_in_background(bob, "devices", "verify", "--accept", "--yes",
                                      "--json", "--timeout", "60", env=env)
        asker = run_in_background(alice, "devices", "verify", "@bob_v", "--device",
                                  str(bob_device), "--yes", "--json", "--timeout", "60",
                                  env=env)
        code_a, events_a, err_a = finish(asker)
        code_b, events_b, err_b = finish(responder)
        assert (code_a, code_b) == (0, 0), (err_a, err_b)
        assert follower.proc.poll() is None and not follower.errors, follower.errors
        follower.stop()
    sas_a = next(e for e in events_a if e["event"] == "sas")
    sas_b = next(e for e in events_b if e["event"] == "sas")
    assert sas_a == sas_b and len(sas_a["emoji"]) == 7 and len(sas_a["decimals"]) == 3
    assert events_a[-1]["event"] == events_b[-1]["event"] == "verified"
    assert events_a[-1]["device_id"] == bob_device

    # Stored, on both sides, in the encrypted vault (not in the clear).
    listed = [json.loads(line) for line in ok(bob, "devices", "@alice_v", "--json",
                                              env=env).splitlines()]
    assert [d["verified"] for d in listed] == [True]
    assert all(len(group) <= 4 for group in listed[0]["fingerprint"].split(" "))
    trust = (bob / "trust.vault").read_bytes()
    assert listed[0]["fingerprint"].replace(" ", "").encode() not in trust
    human = ok(alice, "devices", "@bob_v", env=env)
    assert f"device {bob_device}" in human and "(verified)" in human


def test_a_mismatch_answered_no_fails_both_sides_and_stores_nothing(people):
    alice, bob, _, env, _ = people
    responder = run_in_background(bob, "devices", "verify", "--accept", "--timeout", "60",
                                  env=env, stdin="n\n")
    asker = run_in_background(alice, "devices", "verify", "@bob_v", "--yes",
                              "--timeout", "60", env=env)
    code_b, _, err_b = finish(responder)
    code_a, _, err_a = finish(asker)
    assert code_b == 1 and "SAS_MISMATCH" in err_b.splitlines()[-1], err_b
    assert code_a == 1 and "cancelled by the other device" in err_a and "SAS_MISMATCH" in err_a
    assert "(not verified)" in ok(alice, "devices", "@bob_v", env=env)


async def test_a_new_device_is_unverified_and_bad_input_gets_one_line(people, server,
                                                                      tmp_path):
    alice, _, bob_phone, env, _ = people
    bob2 = await login(server, bob_phone, "Bob", profile=tmp_path / "bob2")
    await bob2.devices.open(PASSPHRASE)
    await bob2.close()
    listed = [json.loads(line) for line in ok(alice, "devices", "@bob_v", "--json",
                                              env=env).splitlines()]
    assert len(listed) == 2 and not any(d["verified"] for d in listed)
    assert "(this device)" in ok(alice, "devices", env=env)

    wrong = tmp_path / "wrong"
    wrong.write_text("not it\n")
    refused = pigeon(alice, "devices", env={"PIGEON_PASSPHRASE_FILE": str(wrong)})
    assert refused.returncode == 1
    assert "[WRONG_PASSPHRASE]" in one_error_line(refused)
    no_device = pigeon(alice, "devices", "verify", "@bob_v", "--device", "999999", env=env)
    assert no_device.returncode == 1 and "DEVICE_NOT_FOUND" in one_error_line(no_device)
    nobody = pigeon(alice, "devices", "verify", "--accept", "--timeout", "1", env=env)
    assert nobody.returncode == 1 and "SAS_TIMEOUT" in one_error_line(nobody)
    unanswered = pigeon(alice, "devices", "verify", "@bob_v", "--yes", "--timeout", "1",
                        env=env)
    assert unanswered.returncode == 1
    assert one_error_line(unanswered) == ("error: verification cancelled by this device: the "
                                          "verification took too long [SAS_TIMEOUT]")
    usage = pigeon(alice, "devices", "verify", env=env)
    assert usage.returncode == 2


async def test_trust_warns_once_of_a_new_device_and_only_verified_refuses(server, phone,
                                                                          tmp_path):
    """The API `send --secret` and `receive` call (client.trust), through a real server."""
    from pigeon.client.trust import TrustWarning, UnverifiedDevices

    bob_phone = phone()
    alice = await signed_up(server, phone(), "Alice", "alice_t", tmp_path / "a")
    bob = await signed_up(server, bob_phone, "Bob", "bob_t", tmp_path / "b")
    bob2 = None
    try:
        assert bob.profile.user_id is not None
        bob_id = bob.profile.user_id
        chat = await alice.chats.open_private(bob_id)  # contacts: each sees the other's keys
        await alice.messages.send(chat.id, "hi")
        await bob.messages.send(chat.id, "hello")
        assert await alice.trust.check([bob_id]) == []  # first sight: remembered quietly
        bob2 = await signed_up(server, bob_phone, "Bob", "bob_t", tmp_path / "b2")
        warnings = await alice.trust.check([bob_id])
        assert [(w.kind, w.device_id) for w in warnings] == [
            ("new_device", bob2.profile.session_id)]
        assert isinstance(warnings[0], TrustWarning)
        assert await alice.trust.check([bob_id]) == []  # warned once
        devices = await alice.devices.query([bob_id])
        with pytest.raises(UnverifiedDevices) as refused:
            await alice.trust.require_verified(devices)
        assert {d.device_id for d in refused.value.devices} == {d.device_id for d in devices}
        for device in devices:
            await alice.trust.set_verified(device)
        await alice.trust.require_verified(devices)
        # Kept encrypted in the profile: a new client on it still knows.
        again = Client(server.url, alice.profile)
        await again.connect()
        try:
            await again.devices.open(PASSPHRASE)
            await again.trust.require_verified(devices)
            assert await again.trust.check([bob_id]) == []
        finally:
            await again.close()
    finally:
        for client in (alice, bob, bob2):
            if client is not None:
                await client.close()


async def test_the_inbox_router_hands_steps_to_a_verification_and_keeps_secrets(
        server, phone, tmp_path):  # type: ignore[no-untyped-def]
    """One reader of the inbox (client.inbox, following): a request no verification of this
    process waits for is offered (a VerificationRequest update, the step sealed in the
    mailbox) and taken by a later wait_for_request; the steps of a running verification go
    to it; a secret message read meanwhile is kept, not swallowed. Also: verifying one's
    own other device."""
    from pigeon.client.secret import SecretMessage
    from pigeon.client.verification import VerificationRequest

    a_phone, b_phone = phone(), phone()
    alice = await signed_up(server, a_phone, "Alice", "alice_o", tmp_path / "a")
    laptop = await signed_up(server, a_phone, "Alice", "alice_o", tmp_path / "a2")
    bob = await signed_up(server, b_phone, "Bob", "bob_o", tmp_path / "b")
    try:
        assert alice.profile.user_id is not None and bob.profile.user_id is not None
        chat = await alice.chats.open_private(bob.profile.user_id)
        await alice.messages.send(chat.id, "hi")
        await bob.messages.send(chat.id, "hello")
        for client in (alice, bob):
            await client.secret.open()
        alice.secret.follow()
        pending = await laptop.verifier.request(alice.profile.user_id,
                                                alice.profile.session_id)
        await bob.secret.send(None, "kept while verifying", user_id=alice.profile.user_id)

        async def offered() -> VerificationRequest:
            async for update in alice.updates():
                if isinstance(update, VerificationRequest):
                    return update
            raise AssertionError("no request")
        request = await asyncio.wait_for(offered(), 30)
        assert request.device_id == laptop.profile.session_id
        assert "--accept" in request.line
        sealed = tmp_path / "a" / "verify-steps.vault"
        assert sealed.exists() and b"start" not in sealed.read_bytes()  # sealed, not clear
        accepted = await alice.verifier.wait_for_request()
        codes = await asyncio.gather(pending.short_code(), accepted.short_code())
        assert codes[0] == codes[1]
        await asyncio.gather(pending.confirm(), accepted.confirm())
        verified = await asyncio.gather(pending.finish(), accepted.finish())
        assert [d.device_id for d in verified] == [alice.profile.session_id,
                                                  laptop.profile.session_id]
        assert await alice.trust.is_verified(verified[1])
        await alice.inbox.idle()
        chat_id = alice.secret.chat_with(bob.profile.user_id)
        assert chat_id is not None
        texts = [m.text for m in await alice.secret.history(chat_id)]
        assert texts == ["kept while verifying"]
        assert isinstance(SecretMessage, type)
    finally:
        for client in (alice, laptop, bob):
            await client.close()


async def test_secret_sends_and_receive_warn_and_only_verified_refuses(people, server,
                                                                       tmp_path):
    """The trust warnings wired into secret chats, as a person runs them: `send --secret`
    warns (stderr) of a new device of the peer, once; `--only-verified` refuses unverified
    devices (exit 1, one line, nothing sent) and sends once they are verified; `receive
    --json` says `device_warning` and `verification_request` lines."""
    from pigeon.client.profile import Profile

    alice, bob, bob_phone, env, _ = people
    first = pigeon(alice, "send", "--secret", "--to", "@bob_v", "first", env=env)
    assert first.returncode == 0 and "warning" not in first.stderr, first.stderr  # first sight
    bob2 = await signed_up(server, bob_phone, "Bob", "bob_v", tmp_path / "bob2")
    try:
        new_id = bob2.profile.session_id
        warned = pigeon(alice, "send", "--secret", "--to", "@bob_v", "second", env=env)
        assert warned.returncode == 0, warned.stderr
        assert f"has a new device {new_id} (test)" in warned.stderr
        assert "pigeon devices verify" in warned.stderr
        again = pigeon(alice, "send", "--secret", "--to", "@bob_v", "third", env=env)
        assert again.returncode == 0 and "new device" not in again.stderr  # said once
        refused = pigeon(alice, "send", "--secret", "--only-verified", "--to", "@bob_v",
                         "not for them", env=env)
        assert refused.returncode == 1
        line = one_error_line(refused)
        assert "[UNVERIFIED_DEVICES]" in line and f"device {new_id}" in line
        assert "not verified" in line
        usage = pigeon(alice, "send", "--only-verified", "--to", "@bob_v", "x")
        assert usage.returncode == 2

        # Bob's new device asks Alice's to verify; then Bob gains a third: Alice's receive
        # says both, and the secret message, as JSON lines.
        assert bob2.profile.user_id is not None
        alice_id = Profile.load(alice).user_id
        assert alice_id is not None
        await bob2.verifier.request(alice_id)
        bob3 = await signed_up(server, bob_phone, "Bob", "bob_v", tmp_path / "bob3")
        await bob3.close()
        ok(bob, "send", "--secret", "--to", "@alice_v", "hello from bob", env=env)
        lines = [json.loads(raw) for raw in ok(alice, "receive", "--json",
                                               env=env).splitlines()]
        warnings = [o for o in lines if o.get("type") == "device_warning"]
        assert [(w["warning"], w["device_id"]) for w in warnings] == [
            ("new_device", bob3.profile.session_id)]
        assert set(warnings[0]) == {"type", "warning", "user_id", "device_id", "name",
                                    "fingerprint"}
        requests = [o for o in lines if o.get("type") == "verification_request"]
        assert requests == [{"type": "verification_request", "user_id": bob2.profile.user_id,
                             "device_id": new_id}]
        assert [o["text"] for o in lines if o.get("secret")] == ["hello from bob"]
        assert lines.index(warnings[0]) < lines.index(
            next(o for o in lines if o.get("secret")))  # the warning comes first

        # Verified (through the SDK on Alice's profile, as `devices verify` stores it):
        # --only-verified sends.
        verifier = Client(server.url, Profile.load(alice))
        await verifier.connect()
        try:
            await verifier.devices.open(PASSPHRASE)
            assert bob2.profile.user_id is not None
            for device in await verifier.devices.query([bob2.profile.user_id]):
                await verifier.trust.set_verified(device)
        finally:
            await verifier.close()
        ok(alice, "send", "--secret", "--only-verified", "--to", "@bob_v", "verified only",
           env=env)
        assert "verified only" in ok(bob, "receive", env=env)
    finally:
        await bob2.close()
