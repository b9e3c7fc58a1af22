"""The operator's tools (issue 11): `pigeon admin backup/restore` round trip under load, and
`pigeon admin users` finding, disabling, enabling and deleting accounts, through a real
server's operator listener."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pigeon.client import Client, Profile
from pigeon.protocol import methods as m
from pigeon.protocol.errors import Unauthorized
from pigeon.testing import ServerProcess, login


async def admin(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """``pigeon admin ARGS`` against the server's operator listener, off the event loop."""
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "pigeon", "admin", *args, "--operator",
                         server.operator_url], capture_output=True, text=True, timeout=120)


async def admin_async(server: ServerProcess, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pigeon", "admin", *args, "--operator", server.operator_url,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def restore(path: Path, data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pigeon", "admin", "restore", str(path),
                           "--data", str(data)], capture_output=True, text=True, timeout=120)


async def restore_async(path: Path, data: Path) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(restore, path, data)


def same_device(server: ServerProcess, client: Client) -> Client:
    """A client of ``server`` with ``client``'s session and sync position."""
    profile = Profile.load(None)
    old = client.profile
    profile.token, profile.user_id, profile.session_id = old.token, old.user_id, old.session_id
    return Client(server.url, profile)


async def test_backup_under_load_restores_every_acknowledged_message(
        tmp_path: Path, phone) -> None:
    with ServerProcess(tmp_path / "data") as server:
        usernames = [f"person_{i}_{phone()[-5:]}" for i in range(4)]
        people = [await login(server, phone(), f"P{i}", username=name)
                  for i, name in enumerate(usernames)]
        chats = [(await people[i].chats.open_private(people[(i + 1) % 4].profile.user_id)).id
                 for i in range(4)]
        acked: list[tuple[float, int, int, str]] = []  # (when, chat, id, text)
        stop = asyncio.Event()

        async def sender(i: int) -> None:
            n = 0
            while not stop.is_set():
                text = f"p{i} message {n}"
                sent = await people[i].messages.send(chats[i], text)
                acked.append((time.monotonic(), chats[i], sent.message.id, text))
                n += 1

        senders = [asyncio.create_task(sender(i)) for i in range(4)]
        await asyncio.sleep(1.0)
        started = time.monotonic()
        pts_before = {p.profile.user_id: (await p.call("updates.get_state", m.GetState())).pts
                      for p in people}
        backup = tmp_path / "backups" / "pigeon.backup"
        backup.parent.mkdir()
        code, out, err = await admin_async(server, "backup", str(backup))
        assert code == 0, err
        assert f"to {backup}" in out and "pigeon admin restore" in out
        await asyncio.sleep(0.3)  # the server kept serving meanwhile
        stop.set()
        await asyncio.gather(*senders)
        during = [a for a in acked if a[0] >= started]
        assert len(during) > 10, "the backup ran under load"
        assert backup.stat().st_mode & 0o077 == 0  # as private as the data it copies
        refused = await admin(server, "backup", str(backup))
        assert refused.returncode == 1 and "[CONFLICT]" in refused.stderr
        busy = await restore_async(backup, tmp_path / "data")
        assert busy.returncode == 1 and "another pigeon server" in busy.stderr
        server.kill()  # the original is gone for good: only the backup is left
        for person in people:
            await person.close()
    restored_dir = tmp_path / "restored"
    done = await restore_async(backup, restored_dir)
    assert done.returncode == 0, done.stderr
    assert (restored_dir / "secret.key").read_bytes() == \
        (tmp_path / "data" / "secret.key").read_bytes()
    again = await restore_async(backup, restored_dir)
    assert again.returncode == 1 and "exists" in again.stderr
    with ServerProcess(restored_dir) as restored:
        devices = [same_device(restored, p) for p in people]
        try:
            for device in devices:
                await device.connect()  # every session survived
            by_chat: dict[int, set[tuple[int, str]]] = {}
            for device, chat in zip(devices, chats, strict=True):
                shown: set[tuple[int, str]] = set()
                before_id = None
                while page := await device.messages.history(chat, before_id=before_id,
                                                            limit=100):
                    shown.update((msg.id, msg.text) for msg in page)
                    before_id = page[-1].id
                by_chat[chat] = shown
            missing = [a for a in acked if a[0] < started and (a[2], a[3]) not in by_chat[a[1]]]
            assert missing == [] and len(acked) > 50
            for device in devices:
                state = await device.call("updates.get_state", m.GetState())
                assert state.pts >= pts_before[device.profile.user_id]  # sync positions hold
                difference = await device.call("updates.get_difference",
                                               m.GetDifference(pts=state.pts - 1))
                assert [u.pts for u in difference.updates] == [state.pts]
            for name, person in zip(usernames, people, strict=True):  # every username too
                assert (await devices[0].account.resolve_username(name)).id == \
                    person.profile.user_id
        finally:
            for device in devices:
                await device.close()


async def test_admin_users_find_disable_enable_and_delete(tmp_path: Path, phone) -> None:
    # Alice asks for four codes by SMS here: more than one number's default budget.
    with ServerProcess(tmp_path / "data", env={"PIGEON_CODE_RATE_PHONE": "100/1h"}) as server:
        alice_phone = phone()
        alice = await login(server, alice_phone, "Alice", username="alice_admin")
        bob = await login(server, phone(), "Bob", username="bob_admin")
        alice_id = alice.profile.user_id
        try:
            chat = await alice.chats.open_private(bob.profile.user_id)
            await alice.messages.send(chat.id, "hi Bob")
            found = await admin(server, "users", "find", "@alice_admin")
            assert found.returncode == 0, found.stderr
            assert found.stdout.strip() == f"user:{alice_id} {alice_phone} Alice @alice_admin  " \
                "1 session(s)"
            by_name = await admin(server, "users", "find", "ALI")
            assert by_name.stdout.count("user:") == 1
            by_id = await admin(server, "users", "find", f"user:{alice_id}")
            assert f"user:{alice_id} " in by_id.stdout
            assert (await admin(server, "users", "find", "nobody_like_that")).stdout.strip() == \
                "no account matches"
            bad = await admin(server, "users", "find", "\x01")
            assert bad.returncode == 1 and "[INVALID_ARGUMENT]" in bad.stderr

            async def cut_off() -> Unauthorized:
                with pytest.raises(Unauthorized) as ended:
                    async for _update in alice.updates():
                        pass
                return ended.value

            watching = asyncio.create_task(cut_off())
            await asyncio.sleep(0.2)
            disabled = await admin(server, "users", "disable", f"user:{alice_id}")
            assert disabled.returncode == 0, disabled.stderr
            assert disabled.stdout.strip() == f"disabled user:{alice_id}; 1 session(s) ended"
            ended = await asyncio.wait_for(watching, 10)  # at once, not at her next call
            assert "disabled" in ended.message
            assert "DISABLED" in (await admin(server, "users", "find", "@alice_admin")).stdout
            with pytest.raises(Unauthorized) as refused:
                await login(server, alice_phone, "Alice")
            assert refused.value.code == "ACCOUNT_DISABLED"
            assert (await admin(server, "users", "enable", f"user:{alice_id}")).returncode == 0
            alice = await login(server, alice_phone, "Alice")
            assert alice.profile.user_id == alice_id
            unsure = await admin(server, "users", "delete", f"user:{alice_id}")
            assert unsure.returncode == 2  # --yes is required
            deleted = await admin(server, "users", "delete", f"user:{alice_id}", "--yes")
            assert deleted.returncode == 0 and "1 session(s) ended" in deleted.stdout
            assert (await admin(server, "users", "find", alice_phone)).stdout.strip() == \
                "no account matches"
            gone = await admin(server, "users", "find", f"user:{alice_id}")
            assert "Deleted account" in gone.stdout
            # Her messages stay the other member's history; her number is free again.
            assert [msg.text for msg in await bob.messages.history(chat.id)] == ["hi Bob"]
            again = await login(server, alice_phone, "Alice again")
            assert again.profile.user_id != alice_id
            await again.close()
            missing = await admin(server, "users", "disable", "user:999999")
            assert missing.returncode == 1 and "[USER_NOT_FOUND]" in missing.stderr
            usage = await admin(server, "users", "disable", "alice")
            assert usage.returncode == 2
        finally:
            await alice.close()
            await bob.close()
