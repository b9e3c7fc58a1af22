"""The attacker process: ``python -m pigeon.siege.attackproc`` reads a :class:`Plan` as one
JSON line on stdin, attacks, and writes one JSON line a second on stdout::

    {"sec": 7, "modes": {"login": {"calls": 812, "refused": 790, ...}, ...}}

and a last line ``{"done": true}``. It runs apart from the legitimate users so that the
attackers' own CPU use does not slow the clocks that time the legitimate requests; it
stops by itself at the plan's end (at the latest 10 s after it), on SIGTERM, and when its
stdin closes (the siege that started it is gone).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time

from .addresses import raise_fd_limit
from .attackers import Attack, Plan


async def _report(attack: Attack, plan: Plan) -> None:
    sec = max(0, int(time.time() - plan.t0))
    while True:
        await asyncio.sleep(max(0.0, plan.t0 + sec + 1 - time.time()))
        line = {"sec": sec, "modes": {m: c.take() for m, c in attack.counters.items()}}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        sec += 1


async def _orphaned(attack: Attack) -> None:
    """Stop when stdin reaches its end: the parent closed it or died."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass
    attack.stop()


async def main() -> None:
    plan = Plan(**json.loads(sys.stdin.readline()))
    sockets = sum(len(a) for a in plan.modes.values()) * max(2, plan.conns_per_attacker)
    raise_fd_limit(sockets + 1024)
    attack = Attack(plan)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, attack.stop)
    reporter = asyncio.create_task(_report(attack, plan))
    watchdog = asyncio.create_task(_orphaned(attack))
    runner = asyncio.create_task(attack.run())
    stop = asyncio.create_task(attack.stopped())
    deadline = max(0.0, plan.off_at - time.time()) + 10.0
    await asyncio.wait({runner, stop}, timeout=deadline, return_when=asyncio.FIRST_COMPLETED)
    runner.cancel()
    stop.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    # One more report so the last partial second is not lost.
    sec = max(0, int(time.time() - plan.t0))
    reporter.cancel()
    watchdog.cancel()
    line = {"sec": sec, "modes": {m: c.take() for m, c in attack.counters.items()}}
    sys.stdout.write(json.dumps(line) + "\n" + json.dumps({"done": True}) + "\n")
    sys.stdout.flush()


def run() -> None:
    from pigeon.runtime import run as run_loop

    run_loop(main())


if __name__ == "__main__":
    run()
