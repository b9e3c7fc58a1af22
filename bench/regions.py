"""Issue 12, deliverable 6: what crossing regions costs. Two regions on loopback (each its own
PostgreSQL database, nats-server with JetStream, one `pigeon serve`; pigeon.testing_regions).

    python bench/regions.py [--messages 500] [--inflight 8] [--backlog 500] [--edits 300]
                            [--file-mib 8]

live: Alice (region a) sends --messages private messages to Bob (region b), --inflight at a
time, as fast as a acknowledges them; prints a's acknowledgement rate, the rate at which they
reach Bob's device (first send to last arrival) and each message's time from send to Bob's
device (p50, p99, max). For comparison, the same between two people of region a.

edits: Alice edits one of her messages to Bob --edits times, --inflight at a time; prints
the rate at which the edits reach Bob's device (each crosses as an event, applied in order).

file: Alice sends Bob a file of --file-mib MiB; prints the time from the send to the message
on Bob's device (b fetches the bytes from a in 256 KiB requests, checks and stores them
first) and that rate in MiB/s.

group: Alice makes a group with Carol and Bob; she sends --messages to it (they reach b's
replica), then Bob sends --messages (each forwarded by b to a, acknowledged after a's
commit); prints the same figures as live.

backlog: region b's node and nats-server are killed; Alice sends --backlog messages (all
acknowledged by a); b is started again, and it prints the time from b's node listening to
Bob having them all, and that rate.

Not a test: figures vary with the machine and its neighbours (2 shared cores here).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pigeon import testing_postgres as pg  # noqa: E402
from pigeon.client import Client  # noqa: E402
from pigeon.protocol.updates import EditMessage, NewMessage  # noqa: E402
from pigeon.testing import login  # noqa: E402
from pigeon.testing_regions import RegionNode, running_two_regions  # noqa: E402


def ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def send_and_watch(sender: Client, chat_id: int, receiver: Client, count: int,
                         inflight: int, tag: str) -> tuple[float, float, list[float]]:
    sent_at: dict[str, float] = {}
    arrived: dict[str, float] = {}
    done = asyncio.Event()

    async def watch() -> None:
        async for update in receiver.updates():
            if isinstance(update, NewMessage) and update.message.text.startswith(tag):
                arrived.setdefault(update.message.text, time.perf_counter())
                if len(arrived) == count:
                    done.set()
                    return

    watcher = asyncio.create_task(watch())
    gate = asyncio.Semaphore(inflight)
    start = time.perf_counter()

    async def one(i: int) -> None:
        async with gate:
            text = f"{tag}{i}"
            sent_at[text] = time.perf_counter()
            await sender.messages.send(chat_id, text)

    await asyncio.gather(*(one(i) for i in range(count)))
    acked = time.perf_counter() - start
    await asyncio.wait_for(done.wait(), 300)
    watcher.cancel()
    delivered = max(arrived.values()) - start
    return acked, delivered, [arrived[t] - sent_at[t] for t in sent_at]


def report(what: str, count: int, acked: float, delivered: float,
           latencies: list[float]) -> None:
    print(f"{what}: {count} messages; acknowledged {count / acked:,.0f}/s; on the receiver's "
          f"device {count / delivered:,.0f}/s; send->device p50 {ms(latencies, 0.5):.1f} ms, "
          f"p99 {ms(latencies, 0.99):.1f} ms, max {max(latencies) * 1000:.1f} ms")


async def main(args: argparse.Namespace, a: RegionNode, b: RegionNode) -> None:
    alice = await login(a.node, "+4915199000001", "Alice")
    carol = await login(a.node, "+4915199000002", "Carol")
    bob = await login(b.node, "+447400999001", "Bob")
    await bob.account.set_phone_discoverable(True)
    await bob.account.set_who_can_add("everyone")
    found = await alice.account.resolve_phone("+447400999001")
    to_bob = await alice.chats.open_private(found.id)
    to_carol = await alice.chats.open_private(carol.profile.user_id or 0)
    await alice.messages.send(to_bob.id, "warm up")
    bobs_chat = 0
    async for update in bob.updates():
        if isinstance(update, NewMessage):
            bobs_chat = update.message.chat_id
            break
    report("within region a", args.messages,
           *await send_and_watch(alice, to_carol.id, carol, args.messages, args.inflight, "in"))
    report("region a -> b", args.messages,
           *await send_and_watch(alice, to_bob.id, bob, args.messages, args.inflight, "x"))
    await edits(args, alice, to_bob.id, bob)
    await send_file(args, alice, to_bob.id, bob)
    await spanning_group(args, alice, carol, bob, found.id)
    await bob.close()
    b.node.kill()
    b.nats.kill()
    start = time.perf_counter()
    for i in range(args.backlog):
        await alice.messages.send(to_bob.id, f"away{i}")
    print(f"backlog: {args.backlog} messages acknowledged by a while b was away in "
          f"{time.perf_counter() - start:.2f} s")
    b.nats.start()
    started = time.perf_counter()
    b.node.start()
    listening = time.perf_counter()
    bob = await login(b.node, "+447400999001", "Bob")
    while True:
        history = await bob.messages.history(bobs_chat, limit=1)
        if history and history[0].text == f"away{args.backlog - 1}":
            break
        await asyncio.sleep(0.05)
    drained = time.perf_counter() - listening
    print(f"backlog: b's node listening {listening - started:.2f} s after start; all "
          f"{args.backlog} on b {drained:.2f} s after that ({args.backlog / drained:,.0f}/s, "
          "including JetStream's meta leader election after the restart)")
    for client in (alice, carol, bob):
        await client.close()


async def spanning_group(args: argparse.Namespace, alice: Client, carol: Client, bob: Client,
                         bob_id: int) -> None:
    """A group of region a with Bob (b) in it: a's messages reach b's replica; Bob's are
    forwarded to a, which answers after its commit."""
    group = await alice.chats.create_group("bench", [carol.profile.user_id or 0, bob_id])
    while True:
        try:
            await bob.chats.get(group.id)
            break
        except Exception:  # noqa: BLE001 (the replica is not there yet)
            await asyncio.sleep(0.05)
    report("group of a, a -> b's replica", args.messages,
           *await send_and_watch(alice, group.id, bob, args.messages, args.inflight, "ga"))
    report("group of a, b -> a (forwarded)", args.messages,
           *await send_and_watch(bob, group.id, carol, args.messages, args.inflight, "gb"))


async def edits(args: argparse.Namespace, alice: Client, chat_id: int, bob: Client) -> None:
    target = (await alice.messages.send(chat_id, "to be edited")).message.id
    seen = 0
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal seen
        async for update in bob.updates():
            if isinstance(update, EditMessage) and update.message.text.startswith("edit"):
                seen += 1
                if seen == args.edits:
                    done.set()
                    return

    watcher = asyncio.create_task(watch())
    gate = asyncio.Semaphore(args.inflight)
    start = time.perf_counter()

    async def one(i: int) -> None:
        async with gate:
            await alice.messages.edit(chat_id, target, f"edit {i}")

    await asyncio.gather(*(one(i) for i in range(args.edits)))
    acked = time.perf_counter() - start
    await asyncio.wait_for(done.wait(), 300)
    watcher.cancel()
    arrived = time.perf_counter() - start
    print(f"edits a -> b: {args.edits} edits; acknowledged {args.edits / acked:,.0f}/s; on "
          f"the receiver's device {args.edits / arrived:,.0f}/s")


async def send_file(args: argparse.Namespace, alice: Client, chat_id: int,
                    bob: Client) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.bin"
        await asyncio.to_thread(path.write_bytes, os.urandom(args.file_mib << 20))
        media = await alice.files.upload(path, kind="document")
    start = time.perf_counter()
    await alice.messages.send(chat_id, "big file", media=media.file_id)
    async for update in bob.updates():
        if isinstance(update, NewMessage) and update.message.text == "big file":
            break
    took = time.perf_counter() - start
    print(f"file a -> b: {args.file_mib} MiB on the receiver's device {took:.2f} s after the "
          f"send ({args.file_mib / took:,.1f} MiB/s, fetched in 256 KiB requests)")


def run(args: argparse.Namespace) -> None:
    asyncio.run(pg.require_postgres())
    names = [asyncio.run(pg.create_database()) for _ in range(2)]
    try:
        with tempfile.TemporaryDirectory() as tmp, \
                running_two_regions(Path(tmp), [pg.url_for(n) for n in names]) as (a, b):
            asyncio.run(main(args, a, b))
    finally:
        for name in names:
            asyncio.run(pg.drop_database(name))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--inflight", type=int, default=8)
    parser.add_argument("--backlog", type=int, default=500)
    parser.add_argument("--edits", type=int, default=300)
    parser.add_argument("--file-mib", type=int, default=8)
    run(parser.parse_args())
