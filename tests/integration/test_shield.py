"""The shield against a real server process: each layer, then a small flood."""

import asyncio
import subprocess
import sys

import aiohttp
import msgspec
import pytest

from pigeon.client import Client, Profile
from pigeon.shield.pow import solve
from pigeon.testing import ServerProcess, login

from raw_support import BareWS, shielded

HELLO = msgspec.msgpack.encode({"t": "hello", "versions": [1]})


def call(request_id: int, method: str, **params) -> bytes:
    return msgspec.msgpack.encode({"t": "call", "id": request_id, "method": method,
                                   "params": params})


async def test_proof_of_work_when_required(tmp_path, phone):
    with shielded(tmp_path, pow_min_bits=10) as server:
        async with BareWS(server) as raw:
            await raw.ask(HELLO)
            refused = await raw.ask(call(1, "auth.send_code", phone=phone()))
            assert refused["code"] == "POW_REQUIRED"
            challenge = (await raw.ask(call(2, "auth.challenge")))
            assert challenge["t"] == "result"
            value = msgspec.msgpack.decode(msgspec.msgpack.encode(challenge["value"]))
            token, bits = value["token"], value["difficulty"]
            assert bits >= 10
            pow_ = {"token": token, "nonce": solve(token, bits)}
            ok = await raw.ask(call(3, "auth.send_code", phone=phone(), pow=pow_))
            assert ok["t"] == "result"
        # A solution is good once; it covers a few expensive calls on its own connection
        # (pow_calls_per_proof), never on another.
        async with BareWS(server) as other:
            await other.ask(HELLO)
            replay = await other.ask(call(4, "auth.send_code", phone=phone(), pow=pow_))
            assert replay["code"] == "POW_INVALID"
        # The SDK solves it without the user noticing.
        client = await login(server, phone(), "Patient")
        assert (await client.account.me()).user.name == "Patient"
        await client.close()


async def test_connection_caps_per_address_spare_logged_in_users(tmp_path, phone):
    with shielded(tmp_path, max_per_address=3) as server:
        user = await login(server, phone(), "Resident")
        token = user.profile.token
        await user.close()
        idle = [await BareWS(server, "127.0.5.1").__aenter__() for _ in range(3)]
        try:
            with pytest.raises((aiohttp.ClientError, asyncio.TimeoutError)):
                async with BareWS(server, "127.0.5.1") as extra:
                    await extra.ask(HELLO)
            async with BareWS(server, "127.0.5.2") as neighbour:  # another address is unaffected
                assert (await neighbour.ask(HELLO))["t"] == "welcome"
            # A logged-in device gets in from the address that is full of idlers: its token
            # goes in hello, and the connection leaves the unauthenticated pool.
            client = Client(server.url, Profile(token=token), local_address="127.0.5.3")
            await client.connect()
            assert (await client.account.me()).user.name == "Resident"
            await client.close()
        finally:
            for raw in idle:
                await raw.__aexit__()


async def admission_of(server: ServerProcess) -> dict:
    """The admission counters, from the operator listener's /shield."""
    async with aiohttp.ClientSession() as http, \
            http.get(f"{server.operator_url}/shield") as response:
        return (await response.json())["admission"]


async def test_unauthenticated_pool_evicts_idlers_for_newcomers(tmp_path, phone):
    """The pool holds at most max_unauthenticated connections: each one over it evicts an
    idler at random, and a newcomer still gets in and logs in. Admission happens when the
    connection is accepted, before its WebSocket handshake ends, so the counts read after
    each connect are exact, whatever the timing."""
    cap = 10
    with shielded(tmp_path, max_unauthenticated=cap) as server:
        idlers = []
        try:
            for i in range(1, cap + 6):  # five more than the pool holds
                idlers.append(await BareWS(server, f"127.0.6.{i}").__aenter__())
                admission = await admission_of(server)
                assert admission["unauthenticated"] == min(i, cap), admission
                assert admission["evicted"] == max(0, i - cap), admission
            user = await login(server, phone(), "Newcomer")  # needs a place in the full pool
            admission = await admission_of(server)
            assert admission["unauthenticated"] <= cap, admission
            assert admission["evicted"] >= 6, admission  # the newcomer's place was made
            assert admission["authenticated"] == 1, admission  # and it stayed, logged in
            await user.close()
        finally:
            for raw in idlers:
                await raw.__aexit__()


async def test_spam_from_a_logged_in_account_is_rate_limited(tmp_path, phone):
    with shielded(tmp_path, rate_send="5/1s burst 5", ban_strikes=1000) as server:
        spammer = await login(server, phone(), "Spammer")
        victim = await login(server, phone(), "Victim")
        chat = await spammer.chats.open_private(victim.profile.user_id)
        async with BareWS(server) as raw:
            await raw.ws.send_bytes(msgspec.msgpack.encode(
                {"t": "hello", "versions": [1], "token": spammer.profile.token}))
            await raw.ws.receive(timeout=10)
            codes = []
            for i in range(10):
                answer = await raw.ask(call(i + 1, "messages.send", chat_id=chat.id,
                                            random_id=i + 1, text=f"buy now {i}"))
                codes.append(answer.get("code", "ok"))
            assert codes[:5] == ["ok"] * 5 and "RATE_LIMITED" in codes[5:]
        # Someone else's sends are not affected.
        assert (await victim.messages.send(chat.id, "stop it")).message.text == "stop it"
        await spammer.close()
        await victim.close()


async def test_repeat_offenders_are_banned_at_accept(tmp_path, phone):
    with shielded(tmp_path, ban_strikes=5) as server:
        async with BareWS(server, "127.0.7.7") as raw:
            await raw.ask(HELLO)
            closed = False
            for _ in range(6):
                try:
                    await raw.ws.send_bytes(b"\xc1 junk")
                except ConnectionError:
                    closed = True
                    break
                if (await raw.ws.receive(timeout=5)).type != aiohttp.WSMsgType.BINARY:
                    closed = True
                    break
            assert closed, "the banned address kept its open connection"
        with pytest.raises((aiohttp.ClientError, asyncio.TimeoutError)):
            async with BareWS(server, "127.0.7.7") as again:
                await again.ask(HELLO)
        async with BareWS(server, "127.0.7.8") as other:
            assert (await other.ask(HELLO))["t"] == "welcome"
        status = subprocess.run([sys.executable, "-m", "pigeon", "shield", "status",
                                 "--operator", server.operator_url], capture_output=True, text=True,
                                timeout=30)
        assert status.returncode == 0 and "bans: 1 addresses" in status.stdout


async def test_silent_sockets_are_cut_at_the_hello_deadline(tmp_path):
    with shielded(tmp_path, hello_deadline=1) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /v1/ws HTTP/1.1\r\nHost: x\r\n")  # and then nothing more
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server
        writer.close()


async def test_logged_in_users_stay_served_during_an_unauthenticated_flood(tmp_path, phone):
    """A small siege: 400 code requests from 200 addresses while two users chat."""
    from pigeon.server.settings import Settings

    defaults = {name: getattr(Settings, name) for name in (
        "code_rate_country", "code_rate_global", "rate_address", "rate_prefix",
        "max_per_address", "max_per_prefix")}
    with shielded(tmp_path, **defaults) as server:
        alice = await login(server, phone(), "Alice")
        bob = await login(server, phone(), "Bob")
        chat = await alice.chats.open_private(bob.profile.user_id)
        answers: dict[str, int] = {}

        async def attacker(i: int) -> None:
            try:
                async with BareWS(server, f"127.9.{i // 100}.{i % 100 + 1}") as raw:
                    await raw.ask(HELLO)
                    for j in range(2):
                        reply = await raw.ask(call(j + 1, "auth.send_code",
                                                   phone=f"+4917{i:04d}{j:05d}"))
                        code = "closed" if reply is None else reply.get("code", "ok")
                        answers[code] = answers.get(code, 0) + 1
            except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError):
                answers["refused_at_accept"] = answers.get("refused_at_accept", 0) + 1

        flood = asyncio.gather(*(attacker(i) for i in range(200)))
        sent = [await alice.messages.send(chat.id, f"m{i}") for i in range(30)]
        await flood
        assert [s.message.id for s in sent] == list(range(1, 31))
        assert [m.text for m in reversed(await bob.messages.history(chat.id))] == \
            [f"m{i}" for i in range(30)]
        refused = sum(v for k, v in answers.items() if k != "ok")
        assert answers.get("ok", 0) <= 100 < refused, answers  # code budgets and limits held
        await alice.close()
        await bob.close()
