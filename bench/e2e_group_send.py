"""Time to send one message to an end-to-end encrypted group of N member devices.

    python bench/e2e_group_send.py [--users 25] [--devices-per-user 2] [--sends 20]

Starts a real server (SQLite in a temporary directory), signs up --users people with
--devices-per-user devices each (the sender's own other devices count: they get the key
too), opens every device's keys, and has one device create a secret group with everyone and
send to it through ``client.secret_groups``. Prints:

* the first send: members and devices looked up, a one-time key claimed and an Olm session
  started with every other device, the Megolm key shared in one ``envelopes.send``, then the
  encrypted message sent;
* later sends (p50 and max of --sends): members and devices looked up, Megolm encrypt, send;
* a rotation (the session's message budget used up) once Olm sessions exist: a new Megolm
  key shared with every device over the existing sessions;
* plain sends to a plain group of the same members, for comparison;
* one member device taking its key from its inbox and decrypting the history page.

The argon2 cost of the device vaults is lowered here (it is paid once per device opening,
not per message, and is not what this measures). Not a test: figures vary with the machine
and its neighbours.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pigeon.crypto import vault  # noqa: E402
from pigeon.crypto.megolm import RotationPolicy  # noqa: E402
from pigeon.testing import ServerProcess, login  # noqa: E402

PASSPHRASE = "bench passphrase"


async def timed(coro) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    await coro
    return time.perf_counter() - start


async def main(args: argparse.Namespace) -> None:
    vault.MEMORY_KIB = 8 * 1024
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(Path(tmp) / "data") as server:
        devices = []
        for user in range(args.users):
            phone = f"+49151880{user:05d}"
            for n in range(args.devices_per_user):
                devices.append(await login(server, phone, f"U{user}", device=f"d{n}"))
        sender = devices[0]
        others = [d for d in devices[args.devices_per_user:: args.devices_per_user]]
        owner_id = sender.profile.user_id
        for member in others:  # each wrote to the sender: the sender may add them
            chat = await member.chats.open_private(owner_id)  # type: ignore[arg-type]
            await member.messages.send(chat.id, "hi")
        await asyncio.gather(*(d.devices.open(PASSPHRASE) for d in devices))
        sender.secret_groups.policy = RotationPolicy(max_messages=args.sends + 1)
        group = await sender.secret_groups.create(
            "bench", [m.profile.user_id for m in others])  # type: ignore[misc]
        count = len(devices)
        print(f"group of {group.member_count} members, {count} member devices "
              f"({count - 1} besides the sender's)")

        first = await timed(sender.secret_groups.send(group.id, "first"))
        print(f"first send (Olm sessions + key share + message): {first * 1000:.0f} ms")
        later = [await timed(sender.secret_groups.send(group.id, f"m{i}"))
                 for i in range(args.sends)]
        print(f"later sends: p50 {statistics.median(later) * 1000:.1f} ms, "
              f"max {max(later) * 1000:.1f} ms over {len(later)}")
        rotated = await timed(sender.secret_groups.send(group.id, "rotated"))
        assert sender.secret_groups.rotations == 2
        print(f"send with a rotation (new key over existing Olm sessions): "
              f"{rotated * 1000:.0f} ms")

        plain = await sender.chats.create_group("plain", [m.profile.user_id for m in others])  # type: ignore[misc]
        baseline = [await timed(sender.messages.send(plain.id, f"p{i}"))
                    for i in range(args.sends)]
        print(f"for comparison, plain group sends: p50 "
              f"{statistics.median(baseline) * 1000:.1f} ms")

        reader = devices[-1]

        async def read() -> None:
            await reader.inbox.receive()
            page = await reader.secret_groups.history(group.id, limit=50)
            assert all(m.state == "decrypted" for m in page), page

        took = await timed(read())
        print(f"a member device: keys from its inbox + {args.sends + 2} messages decrypted: "
              f"{took * 1000:.0f} ms")
        for d in devices:
            await d.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=25)
    parser.add_argument("--devices-per-user", type=int, default=2)
    parser.add_argument("--sends", type=int, default=20)
    asyncio.run(main(parser.parse_args()))
