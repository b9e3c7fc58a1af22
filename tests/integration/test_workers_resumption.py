"""Resumption tickets with several workers (issue 13): `pigeon serve --workers 2` on one
PostgreSQL database and one NATS server. Each worker checks tickets against its own map of
live sessions; a session terminated through one worker must leave the other's map too (the
bus carries revocations to every process), or its ticket would still let it in there."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from nats_support import nats_server
from raw_support import Raw, enc, sign_in
from worker_support import worker_of, workers_listening

from pigeon.testing import ServerProcess

pytestmark = pytest.mark.slow

ENV = {"PIGEON_CODE_RATE_PHONE": "100000/1s burst 100000", "PIGEON_BAN_STRIKES": "1000000",
       "PIGEON_MAX_REFUSALS": "100000"}


async def hello_from(server: ServerProcess, address: str, token: str,
                     ticket: str) -> tuple[Raw, int | None, dict[str, Any]]:
    """A connection from ``address``, the worker holding it (its pid) and the answer to a
    hello with this token and ticket."""
    raw = await Raw.open(server, address)
    pid = worker_of(server, address)
    await raw.ws.send_bytes(enc({"t": "hello", "versions": [1], "token": token,
                                 "ticket": ticket}))
    return raw, pid, await asyncio.wait_for(asyncio.shield(raw.welcome), 10.0)


def resumed(answer: dict[str, Any]) -> bool:
    """A welcome the ticket let in (the long way also reads the user)."""
    return answer["t"] == "welcome" and "user" not in answer


async def test_a_session_revoked_through_one_worker_cannot_resume_on_another(
        tmp_path: Path, phone, database: str) -> None:
    with nats_server(tmp_path) as nats_srv, ServerProcess(
            tmp_path / "data", "--store", database, "--bus", nats_srv.url,
            "--workers", "2", env=ENV) as server:
        await workers_listening(server, 2)
        number = phone()
        first, auth = await sign_in(server, number)  # the session to be revoked
        second, other = await sign_in(server, number, device="other")  # the one revoking
        held: dict[int, Raw] = {}  # worker pid -> a connection the ticket let in there
        opened = [first, second]
        try:
            # Tickets are on with workers: each worker lets the session in by its ticket
            # (once its token was checked there the long way, or it was signed in there).
            addresses = (f"127.0.1.{i}" for i in range(1, 200))
            while len(held) < 2:
                raw, pid, answer = await hello_from(server, next(addresses), auth["token"],
                                                    auth["ticket"])
                opened.append(raw)
                assert answer["t"] == "welcome", answer
                if resumed(answer) and pid is not None and pid not in held:
                    held[pid] = raw
            # The other device terminates the session through one worker ...
            raw, through, answer = await hello_from(server, next(addresses), other["token"],
                                                    other["ticket"])
            opened.append(raw)
            assert answer["t"] == "welcome" and through in held
            await raw.ok("sessions.terminate", session_id=auth["session_id"])
            elsewhere = next(pid for pid in held if pid != through)
            # ... and the other worker hears it: the connection it let in is cut off (the
            # map of live sessions is updated first, in the same step).
            await asyncio.wait_for(held[elsewhere].closed.wait(), 15.0)
            # Now the ticket lets the session in on neither worker.
            tried: set[int | None] = set()
            while elsewhere not in tried:
                raw, pid, answer = await hello_from(server, next(addresses), auth["token"],
                                                    auth["ticket"])
                opened.append(raw)
                tried.add(pid)
                assert answer["t"] == "error" and answer["code"] == "SESSION_INVALID", answer
        finally:
            for raw in opened:
                await raw.close()
