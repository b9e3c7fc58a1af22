"""``pigeon siege``: attack a Pigeon server on this machine and measure whether its
legitimate users stay served.

Pure parts (no sockets, no clocks):

    config.py      SiegeConfig, its bounds, the loopback-only check
    addresses.py   which source address in 127.0.0.0/8 each client binds
    wire.py        a sans-I/O WebSocket client and Pigeon frames as maps
    stats.py       per-second buckets, percentiles, phase totals
    report.py      the JSON document and the terminal tables
    plot.py        the PNG (matplotlib, Agg)

I/O parts:

    rawws.py       raw WebSocket connections and calls over asyncio streams
    attackers.py   the attack modes (run in a separate process)
    attackproc.py  that process: plan on stdin, counts on stdout each second
    setup.py       registering the accounts before the run
    legit.py       legitimate users on the SDK: paced sends, pushes, sign-ups
    storm.py       reconnect mode: restart, then time every device back and synced
    devices.py     reconnect mode's idle devices (run in a separate process)
    monitor.py     CPU and memory of the server, of the siege itself, of the machine
    runner.py      servers, setup, runs, --compare

The CLI is ``pigeon siege`` (``pigeon.cli.siege``); ``pigeon siege --help`` lists every
option. The JSON report's layout is in :mod:`.report`.
"""

from typing import Any

from .config import MODES, SiegeConfig, SiegeError, check_loopback

__all__ = ["MODES", "SiegeConfig", "SiegeError", "check_loopback", "siege"]


def __getattr__(name: str) -> Any:
    # The runner pulls in the SDK, psutil and the server's test tools: only on demand, so
    # that `pigeon --help` stays quick.
    if name == "siege":
        from .runner import siege

        return siege
    raise AttributeError(name)
