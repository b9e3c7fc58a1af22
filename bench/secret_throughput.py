"""Secret (end-to-end encrypted) one-to-one messages per second, end to end, against plain
messages in the same run; and the time to start a secret chat with a user of 5 devices.

    python bench/secret_throughput.py [--messages 1000] [--window 16] [--rounds 3]

Starts a real server (``pigeon serve`` on a free port, SQLite in a temporary directory) and,
in this process, Alice and Bob, both online, with profiles on disk (so the encrypted stores
are really written). A message counts when Bob's device has it: for a plain one, pushed;
for a secret one, pushed, decrypted, kept in his encrypted store and acknowledged (his
inbox follows). Alice keeps --window sends in flight. Rounds alternate plain and secret;
medians are printed. Then Alice (a fresh device, no sessions) starts secret chats with
users who each have 5 devices: claim 5 one-time keys, 5 Olm sessions, one envelope each.
Not a test: figures vary with the machine and its neighbours.
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

from pigeon.client import Client  # noqa: E402
from pigeon.client.secret import SecretMessage  # noqa: E402
from pigeon.crypto import vault  # noqa: E402
from pigeon.protocol.updates import NewMessage  # noqa: E402
from pigeon.testing import ServerProcess, login  # noqa: E402

PASSPHRASE = "bench passphrase"


def phone(i: int) -> str:
    return f"+4917{i // 10000 + 10}{i % 10000:07d}"


async def contacts(a: Client, b: Client) -> int:
    assert b.profile.user_id is not None
    chat = (await a.chats.open_private(b.profile.user_id)).id
    await a.messages.send(chat, "hi")
    await b.messages.send(chat, "hello")
    return chat


async def counted(client: Client, kind: type, want: int, prefix: str) -> None:
    seen = 0
    async for update in client.updates():
        text = update.message.text if isinstance(update, NewMessage) else getattr(
            update, "text", "")
        if isinstance(update, kind) and text.startswith(prefix):
            seen += 1
            if seen == want:
                return


async def run_round(alice: Client, bob: Client, chat: int, secret_chat: int, secret: bool,
                    messages: int, window: int, tag: str) -> float:
    prefix = f"{tag}-"
    arrived = asyncio.create_task(counted(bob, SecretMessage if secret else NewMessage,
                                          messages, prefix))
    queue = iter(range(messages))

    async def lane() -> None:
        for i in queue:
            if secret:
                await alice.secret.send(secret_chat, f"{prefix}{i}")
            else:
                await alice.messages.send(chat, f"{prefix}{i}")

    start = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(window)))
    await asyncio.wait_for(arrived, 120)
    return messages / (time.perf_counter() - start)


async def start_time(server: ServerProcess, base: int, tmp: Path, users: int) -> list[float]:
    alice = await login(server, phone(base), "Starter", profile=tmp / "starter")
    await alice.secret.open(PASSPHRASE)
    times = []
    clients = [alice]
    try:
        for u in range(users):
            number = phone(base + 1 + u)
            devices = [await login(server, number, f"Five{u}", device=f"d{d}",
                                   profile=tmp / f"five{u}-{d}") for d in range(5)]
            clients += devices
            await contacts(alice, devices[0])
            for device in devices:
                await device.devices.open(PASSPHRASE)
            assert devices[0].profile.user_id is not None
            start = time.perf_counter()
            await alice.secret.start(devices[0].profile.user_id)
            times.append(time.perf_counter() - start)
    finally:
        for client in clients:
            await client.close()
    return times


async def main(args: argparse.Namespace) -> None:
    if args.cheap_kdf:  # the opening's cost is not what is measured
        vault.TIME_COST, vault.MEMORY_KIB = 1, 8 * 1024
    # Per-account rate limits protect real users from spammers; this measures the path, so
    # they are lifted (as bench/send_throughput.py does), and so is the per-number code
    # limit (one account here logs in five devices).
    lifted = {f"PIGEON_{name}": "1000000/1s burst 1000000"
              for name in ("RATE_SEND", "RATE_SESSION", "RATE_ACCOUNT", "RATE_FANOUT",
                           "FRAME_RATE", "CODE_RATE_PHONE", "CODE_RATE_ADDRESS")}
    with tempfile.TemporaryDirectory() as tmp_dir, \
            ServerProcess(Path(tmp_dir) / "data", env=lifted) as server:
        tmp = Path(tmp_dir)
        alice = await login(server, phone(1), "Alice", profile=tmp / "alice")
        bob = await login(server, phone(2), "Bob", profile=tmp / "bob")
        chat = await contacts(alice, bob)
        for client in (alice, bob):
            await client.secret.open(PASSPHRASE)
        bob.secret.follow()
        assert bob.profile.user_id is not None
        secret_chat = await alice.secret.start(bob.profile.user_id)
        rates: dict[bool, list[float]] = {False: [], True: []}
        for r in range(args.rounds):
            for secret in (False, True):
                rate = await run_round(alice, bob, chat, secret_chat, secret, args.messages,
                                       args.window, f"r{r}{'s' if secret else 'p'}")
                rates[secret].append(rate)
                print(f"round {r} {'secret' if secret else 'plain '}: {rate:8.0f} msg/s",
                      flush=True)
        undecryptable = bob.inbox.undecryptable
        await alice.close()
        await bob.close()
        starts = await start_time(server, 100, tmp, args.five_device_users)
    plain, secret = statistics.median(rates[False]), statistics.median(rates[True])
    print(f"plain  1:1, end to end: {plain:8.0f} msg/s (median of {args.rounds})")
    print(f"secret 1:1, end to end: {secret:8.0f} msg/s ({secret / plain:.0%} of plain; "
          f"{undecryptable} undecryptable)")
    print(f"start a secret chat with a user of 5 devices: median "
          f"{statistics.median(starts) * 1000:.0f} ms (of {len(starts)}; "
          f"min {min(starts) * 1000:.0f}, max {max(starts) * 1000:.0f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--five-device-users", type=int, default=5)
    parser.add_argument("--cheap-kdf", action="store_true",
                        help="argon2id at a test's cost (only the openings get faster)")
    asyncio.run(main(parser.parse_args()))
