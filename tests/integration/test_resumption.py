"""Resumption tickets, the bulk cost cap and retry hints against a real server (issue 13).

A ticket lets a known session's hello in without a database read: the welcome then leaves
``user`` out (the full path reads it). Revocation wins: a logged-out or terminated session's
ticket is refused. A ticket that fails any other way (tampered, another server's) only sends
the hello the long way. A device over its bulk cap is told when to come back (DEFERRED with
``retry_after``) while its sends are served. Refusals at admission and close frames say
when to come back, and the SDK reads them."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from raw_support import Raw, enc, hello_frame, sign_in

from pigeon.client.link import Link, ServerUnreachable
from pigeon.testing import ServerProcess, login

pytestmark = pytest.mark.slow

_MANY = "100000/1s burst 100000"
ENV = {"PIGEON_CODE_RATE_PHONE": _MANY, "PIGEON_BAN_STRIKES": "1000000",
       "PIGEON_MAX_REFUSALS": "100000",
       # two bulk calls at once, then one per 100 s: the third is deferred
       "PIGEON_BULK_RATE_CONNECTION": "1/100s burst 2",
       # a session's second connection replaces its first (closed with a hint)
       "PIGEON_MAX_CONNECTIONS_PER_SESSION": "1",
       # a restart's notice asks for no wait: the SDK test below comes straight back
       "PIGEON_RESTART_DOWNTIME": "0", "PIGEON_RESTART_WINDOW_MAX": "0.5"}


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("resume") / "data", env=ENV) as proc:
        yield proc


@pytest.fixture(scope="module")
def other(tmp_path_factory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("other") / "data", env=ENV) as proc:
        yield proc


async def hello(server: ServerProcess, token: str, ticket: str | None) -> dict[str, Any]:
    """The answer to a hello with this token and ticket (the connection is closed after)."""
    raw = await Raw.open(server)
    try:
        frame: dict[str, Any] = {"t": "hello", "versions": [1], "token": token}
        if ticket is not None:
            frame["ticket"] = ticket
        await raw.ws.send_bytes(enc(frame))
        return await asyncio.wait_for(asyncio.shield(raw.welcome), 10.0)
    finally:
        await raw.close()


def resumed(answer: dict[str, Any]) -> bool:
    """A welcome that the ticket let in: the full path reads the user, this one does not."""
    assert answer["t"] == "welcome", answer
    assert answer["ticket"].startswith("pgr1.")
    return "user" not in answer


async def test_a_ticket_resumes_its_session_even_after_a_restart(server, phone) -> None:
    raw, auth = await sign_in(server, phone())
    await raw.close()
    assert auth["ticket"].startswith("pgr1.")
    answer = await hello(server, auth["token"], auth["ticket"])
    assert resumed(answer) and answer["session_id"] == auth["session_id"]
    assert answer["state"]["pts"] >= 0
    # The welcome's new ticket works too, and so does the old one until it expires.
    assert resumed(await hello(server, auth["token"], answer["ticket"]))
    # A restart reloads the live sessions: the herd that comes back is admitted from memory.
    server.stop()
    server.restart()
    assert resumed(await hello(server, auth["token"], auth["ticket"]))
    # Without a ticket: the long way, as always.
    assert not resumed(await hello(server, auth["token"], None))


async def test_a_tampered_or_foreign_ticket_takes_the_long_way(server, other, phone) -> None:
    raw, auth = await sign_in(server, phone())
    await raw.close()
    ticket = auth["ticket"]
    for i in (5, 20, len(ticket) - 3):
        flipped = "A" if ticket[i] != "A" else "B"
        answer = await hello(server, auth["token"], ticket[:i] + flipped + ticket[i + 1:])
        assert not resumed(answer) and answer["user"]["id"] == auth["user"]["id"]
    # Another server's ticket (its own secret), even for a session with the same id.
    raw, foreign = await sign_in(other, phone())
    await raw.close()
    assert not resumed(await hello(server, auth["token"], foreign["ticket"]))
    # Someone else's token with this ticket: the MAC covers the token's hash.
    assert (await hello(server, foreign["token"], ticket))["code"] == "SESSION_INVALID"
    assert (await hello(server, "pgn_" + "x" * 43, "junk"))["code"] == "SESSION_INVALID"


@pytest.mark.parametrize("how", ["log_out", "terminate", "terminate_others"])
async def test_revocation_wins_over_the_ticket(server, phone, how) -> None:
    number = phone()
    raw, auth = await sign_in(server, number)
    other_raw, _ = await sign_in(server, number, device="other")
    try:
        if how == "log_out":
            await raw.ok("auth.log_out")
        elif how == "terminate":
            await other_raw.ok("sessions.terminate", session_id=auth["session_id"])
        else:
            await other_raw.ok("sessions.terminate_others")
        answer = await hello(server, auth["token"], auth["ticket"])
        assert answer["t"] == "error" and answer["code"] == "SESSION_INVALID", answer
    finally:
        await raw.close()
        await other_raw.close()


async def test_bulk_over_the_cap_is_deferred_while_sends_are_served(server, phone) -> None:
    raw, auth = await sign_in(server, phone())
    peer_raw, peer = await sign_in(server, phone(), name="Peer")
    try:
        chat = await raw.ok("chats.open_private", user_id=peer["user"]["id"])
        diffs = [raw.call("updates.get_difference", pts=0) for _ in range(4)]
        sends = [raw.call("messages.send", chat_id=chat["id"], text=f"hi {i}",
                          random_id=random.getrandbits(62)) for i in range(5)]
        answers = await asyncio.gather(*diffs, *sends)
        got, sent = answers[:4], answers[4:]
        assert all(a["t"] == "result" for a in sent), sent
        deferred = [a for a in got if a["t"] == "error"]
        assert len(deferred) == 2 and sum(a["t"] == "result" for a in got) == 2, got
        for answer in deferred:
            assert answer["code"] == "DEFERRED" and 0 < answer["retry_after"] <= 100
        # Deferred is not refused: the connection is open and keeps serving the device.
        assert (await raw.call("messages.send", chat_id=chat["id"], text="still here",
                               random_id=random.getrandbits(62)))["t"] == "result"
    finally:
        await raw.close()
        await peer_raw.close()


async def test_a_close_frame_carries_the_retry_hint(server, phone) -> None:
    raw, auth = await sign_in(server, phone())
    await raw.close()
    async with aiohttp.ClientSession() as http, \
            http.ws_connect(f"{server.url}/v1/ws", max_msg_size=0) as ws:
        await ws.send_bytes(hello_frame(auth["token"]))
        assert (await ws.receive(timeout=10)).type == aiohttp.WSMsgType.BINARY  # welcome
        newer = await Raw.open(server)  # the same session again: this one is replaced
        try:
            assert (await newer.hello(auth["token"]))["t"] == "welcome"
            while (msg := await ws.receive(timeout=10)).type == aiohttp.WSMsgType.BINARY:
                pass
            assert msg.type == aiohttp.WSMsgType.CLOSE, msg
            assert msg.extra == "TOO_MANY_CONNECTIONS retry_after=15"
        finally:
            await newer.close()


async def test_a_refusal_at_admission_says_when_to_come_back(tmp_path) -> None:
    env = {**ENV, "PIGEON_MAX_PER_ADDRESS": "1"}
    with ServerProcess(tmp_path / "data", env=env) as capped:
        first = await Raw.open(capped)  # the address's one unauthenticated socket
        try:
            async with aiohttp.ClientSession() as http:
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await http.ws_connect(f"{capped.url}/v1/ws")
                assert refused.value.status == 503
                assert refused.value.headers["Retry-After"] == "2"
                # The SDK reads it: it will not come back sooner.
                with pytest.raises(ServerUnreachable) as sdk:
                    await Link.open(http, f"{capped.url}/v1/ws", None, print, print)
                assert sdk.value.retry_after == 2.0 and sdk.value.retryable_connect
        finally:
            await first.close()


async def test_the_sdk_keeps_its_ticket_and_comes_back_with_it(server, phone) -> None:
    client = await login(server, phone(), "Sdk")
    try:
        first = client.profile.ticket
        assert first is not None and first.startswith("pgr1.")
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(server.restart)
        async with asyncio.timeout(30):
            while client.reconnects < 1:
                await asyncio.sleep(0.05)
        async with aiohttp.ClientSession() as http, \
                http.get(f"{server.operator_url}/shield") as response:
            figures = (await response.json())["resumption"]
        assert figures["resumed"] >= 1 and figures["live_sessions"] >= 1
        assert client.profile.ticket is not None  # the new welcome's
        await client.account.me()  # and it works
    finally:
        await client.close()


async def test_returning_devices_are_paced_and_told_their_slot(tmp_path, phone) -> None:
    """Handshakes from known addresses (our users') are limited in number; one past the
    limit is answered 503 with its own slot as Retry-After (shield/pacing.py), and every
    logged-in welcome says over how long a window devices should spread their returns
    after an unannounced drop."""
    env = {**ENV, "PIGEON_MAX_KNOWN_HANDSHAKES": "1", "PIGEON_RESTART_RECONNECT_RATE": "0.5",
           "PIGEON_RESTART_WINDOW_MAX": "25"}
    with ServerProcess(tmp_path / "data", env=env) as paced:
        raw, auth = await sign_in(paced, phone())  # 127.0.0.1 is known from now on
        await raw.close()
        answer = await hello(paced, auth["token"], auth["ticket"])
        assert answer["t"] == "welcome" and 0 < answer["reconnect_window"] <= 25
        waiting = await Raw.open(paced)  # a known address's handshake, under way
        try:
            async with aiohttp.ClientSession() as http:
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await http.ws_connect(f"{paced.url}/v1/ws")
                assert refused.value.status == 503
                # slots 2 s apart (0.5 a second): the next socket gets the next one
                first = int(refused.value.headers["Retry-After"])
                with pytest.raises(aiohttp.WSServerHandshakeError) as later:
                    await http.ws_connect(f"{paced.url}/v1/ws")
                assert int(later.value.headers["Retry-After"]) >= first + 1
                # A device with a call waiting (its user is chatting) comes in past the pacer.
                chatting = await http.ws_connect(f"{paced.url}/v1/ws?waiting=1")
                await chatting.close()
        finally:
            await waiting.close()
        async with aiohttp.ClientSession() as http, \
                http.get(f"{paced.operator_url}/shield") as response:
            returns = (await response.json())["returns"]
        assert returns["deferred"] >= 2 and returns["admitted"] >= 2
