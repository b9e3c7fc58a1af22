"""Sessions against a real server: a login code signs in once, a terminated session never
stays logged in, and one account cannot hold unbounded connections (issue 7, findings 4, 5
and 8). Raw WebSockets, so that races are run exactly as a client could run them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aiohttp
import pytest
from raw_support import Raw, sign_in

from pigeon.testing import ServerProcess

pytestmark = pytest.mark.slow

_MANY = "100000/1s burst 100000"
# One address makes every connection here; the shield's per-address limits and bans are about
# something else (tests/integration/test_shield.py).
RELAXED = {"PIGEON_CODE_RATE_PHONE": _MANY, "PIGEON_BAN_STRIKES": "1000000",
           "PIGEON_MAX_REFUSALS": "100000",
           # one device on 16 sockets at once: the race below, not the caps of finding 5
           "PIGEON_MAX_CONNECTIONS_PER_SESSION": "100",
           "PIGEON_MAX_CONNECTIONS_PER_ACCOUNT": "100"}


@pytest.fixture
def server(tmp_path) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path / "data", env=RELAXED) as proc:
        yield proc


async def connections(server: ServerProcess) -> int:
    async with aiohttp.ClientSession() as http, \
            http.get(f"{server.operator_url}/healthz") as response:
        return int((await response.json())["connections"])


async def closing(*raws: Raw) -> None:
    await asyncio.gather(*(r.close() for r in raws), return_exceptions=True)


# -- finding 8: a login code is consumed once -----------------------------------------------
async def test_one_code_signs_in_once_however_many_race(server: ServerProcess, phone) -> None:
    for round_ in range(6):
        number = phone()
        if round_ % 2:  # odd rounds: an existing account signs in (no name), not a sign-up
            first, _ = await sign_in(server, number)
            await first.close()
        racers = [await Raw.open(server) for _ in range(4)]
        try:
            for raw in racers:
                assert (await raw.hello())["t"] == "welcome"
            sent = await racers[0].ok("auth.send_code", phone=number, sms=True)
            code = await asyncio.to_thread(server.code_for, number)
            params = {"phone": number, "code_id": sent["code_id"], "code": code}
            if not round_ % 2:
                params["name"] = "Racer"
            answers = await asyncio.gather(*(r.call("auth.sign_in", **params) for r in racers))
            won = [a for a in answers if a["t"] == "result"]
            assert len(won) == 1, answers
            assert sorted(a.get("code") for a in answers if a["t"] != "result") == [
                "CODE_EXPIRED"] * 3, answers
            # and the one session it made is the only new one
            sessions = await racers[answers.index(won[0])].ok("sessions.list")
            assert len(sessions) == 1 + round_ % 2
        finally:
            await closing(*racers)


async def test_sign_up_required_keeps_the_code(server: ServerProcess, phone) -> None:
    number = phone()
    raw = await Raw.open(server)
    try:
        await raw.hello()
        sent = await raw.ok("auth.send_code", phone=number, sms=True)
        code = await asyncio.to_thread(server.code_for, number)
        params = {"phone": number, "code_id": sent["code_id"], "code": code}
        answer = await raw.call("auth.sign_in", **params)
        assert answer["code"] == "SIGN_UP_REQUIRED"
        auth = await raw.ok("auth.sign_in", name="Newcomer", **params)
        assert auth["user"]["name"] == "Newcomer"
        assert (await raw.call("auth.sign_in", name="Again", **params))["code"] == "CODE_EXPIRED"
    finally:
        await raw.close()


# -- finding 4: a terminated session never stays logged in ----------------------------------
async def test_no_hello_survives_a_racing_terminate(server: ServerProcess, phone) -> None:
    """Each round: a device of Alice's reconnects on many sockets at the moment her owner
    device terminates that session. Whatever each hello's answer, afterwards no socket may
    still act as the terminated session."""
    number = phone()
    owner, _ = await sign_in(server, number, "Alice", "owner")
    survivors: list[str] = []
    try:
        for round_ in range(12):
            device, auth = await sign_in(server, number, "Alice", f"device {round_}")
            await device.close()
            token, session_id = auth["token"], auth["session_id"]
            sockets = [await Raw.open(server) for _ in range(16)]
            try:
                which = "sessions.terminate" if round_ % 2 else "sessions.terminate_others"
                extra = {"session_id": session_id} if round_ % 2 else {}
                answers = await asyncio.gather(
                    owner.call(which, **extra), *(s.hello(token) for s in sockets))
                assert answers[0]["t"] == "result", answers[0]
                for raw, hello in zip(sockets, answers[1:], strict=True):
                    if hello["t"] != "welcome":
                        assert hello.get("code") == "SESSION_INVALID", hello
                        continue
                    after = await raw.call("account.get_me")
                    if after["t"] == "result":
                        survivors.append(f"round {round_}: {hello.get('session_id')}")
                    else:
                        assert after.get("code") in ("SESSION_INVALID", None), after
                listed = {s["id"] for s in await owner.ok("sessions.list")}
                assert session_id not in listed
            finally:
                await closing(*sockets)
        assert survivors == []
        # Session ids are never handed out twice, even after the newest was deleted.
        listed = await owner.ok("sessions.list")
        again, auth = await sign_in(server, number, "Alice", "last")
        await again.close()
        assert auth["session_id"] > session_id
        assert auth["session_id"] not in {s["id"] for s in listed}
    finally:
        await owner.close()


# -- finding 5: connections per account and per session -------------------------------------
@pytest.fixture
def capped_server(tmp_path) -> Iterator[ServerProcess]:
    env = {**RELAXED, "PIGEON_MAX_CONNECTIONS_PER_ACCOUNT": "5",
           "PIGEON_MAX_CONNECTIONS_PER_SESSION": "2"}
    with ServerProcess(tmp_path / "data", env=env) as proc:
        yield proc


async def test_connections_are_capped_per_session_and_per_account(capped_server, phone) -> None:
    server = capped_server
    number = phone()
    opened: list[Raw] = []

    async def connect(token: str) -> tuple[Raw, dict]:
        raw = await Raw.open(server)
        opened.append(raw)
        return raw, await raw.hello(token)

    try:
        first, a = await sign_in(server, number, "Alice", "a")  # session A: 1 connection
        opened.append(first)
        second, b = await sign_in(server, number, "Alice", "b")  # session B: 1
        opened.append(second)
        a2, welcome = await connect(a["token"])  # A: 2
        assert welcome["t"] == "welcome"
        # A third connection of session A: the device reconnected, so its oldest connection
        # (most likely a dead one) is closed and the new one is served.
        a3, welcome = await connect(a["token"])
        assert welcome["t"] == "welcome"
        await asyncio.wait_for(first.closed.wait(), 10)
        assert first.fatal is not None and first.fatal["code"] == "TOO_MANY_CONNECTIONS"
        assert (await a2.call("account.get_me"))["t"] == "result"
        assert (await a3.call("account.get_me"))["t"] == "result"
        b2, welcome = await connect(b["token"])  # B: 2; the account has 4
        assert welcome["t"] == "welcome"
        # A fifth connection through a third session fills the account ...
        third, c = await sign_in(server, number, "Alice", "c")
        opened.append(third)
        # ... and a sixth is refused with a typed error; the others carry on.
        refused, answer = await connect(c["token"])
        assert answer.get("code") == "TOO_MANY_CONNECTIONS", answer
        assert answer.get("retry_after"), answer
        await asyncio.wait_for(refused.closed.wait(), 10)
        # A new device cannot sign in either while the account is full; its code stays good.
        newcomer = await Raw.open(server)
        opened.append(newcomer)
        await newcomer.hello()
        sent = await newcomer.ok("auth.send_code", phone=number, sms=True)
        code = await asyncio.to_thread(server.code_for, number)
        params = {"phone": number, "code_id": sent["code_id"], "code": code}
        assert (await newcomer.call("auth.sign_in", **params))["code"] == "TOO_MANY_CONNECTIONS"
        for raw in (a2, a3, b2, second, third):
            assert (await raw.call("account.get_me"))["t"] == "result"
        # A slot frees up: the same code now signs in (the refusal spent one attempt only).
        before = await connections(server)
        await b2.close()
        for _ in range(100):
            if await connections(server) < before:
                break
            await asyncio.sleep(0.05)
        answer = await newcomer.call("auth.sign_in", **params)
        assert answer["t"] == "result", answer
    finally:
        await closing(*opened)
