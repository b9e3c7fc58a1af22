"""Login codes under attack (issue 7, findings 13 and 14), against real server processes:
numbers that cannot take an SMS, codes delivered to logged-in devices when someone floods a
number, the service account nobody can write to, and newcomers who solve proof of work
getting past a shield that rations new connections."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import msgspec
import pytest

from pigeon.client import Client, Profile
from pigeon.protocol.errors import Forbidden, InvalidArgument, RateLimited
from pigeon.protocol.updates import NewMessage
from pigeon.shield.pow import solve
from pigeon.shield.ticket import HEADER, format_ticket, parse_challenge
from pigeon.testing import ServerProcess, login

HELLO = msgspec.msgpack.encode({"t": "hello", "versions": [1]})


def server_with(tmp_path, **env) -> ServerProcess:
    return ServerProcess(tmp_path / "data", env={f"PIGEON_{k.upper()}": str(v)
                                                 for k, v in env.items()})


async def fresh(server: ServerProcess, address: str = "127.0.0.1") -> Client:
    client = Client(server.url, Profile(), local_address=address, track_updates=False)
    return await client.connect()


async def code_message(device: Client, message_id: int = 1, timeout: float = 10.0) -> NewMessage:
    """The service account's message ``message_id`` (in its chat) as the device receives it."""
    async def wait() -> NewMessage:
        async for update in device.updates():
            if (isinstance(update, NewMessage) and "Login code" in update.message.text
                    and update.message.id == message_id):
                return update
        raise AssertionError("the updates ended")
    return await asyncio.wait_for(wait(), timeout)


async def test_numbers_that_cannot_take_an_sms_are_refused_before_anything_is_spent(tmp_path):
    # A budget of one code in all: if any refused number spent it, the last request fails.
    with server_with(tmp_path, code_rate_global="1/1h burst 1",
                     code_rate_country="1/1h burst 1", code_budget_open=1) as server:
        client = await fresh(server)
        try:
            refused = {}
            for number in ("+19005551234",    # US premium rate
                           "+448712345678",   # UK premium rate
                           "+4930123456",     # a Berlin landline
                           "+498001234567",   # German toll-free
                           "+4980012345",     # not a valid number
                           "12345", "call me"):
                with pytest.raises(InvalidArgument) as err:
                    await client.auth.send_code(number)
                refused[number] = err.value.code
            assert refused == {"+19005551234": "PHONE_NOT_SUPPORTED",
                               "+448712345678": "PHONE_NOT_SUPPORTED",
                               "+4930123456": "PHONE_NOT_SUPPORTED",
                               "+498001234567": "PHONE_NOT_SUPPORTED",
                               "+4980012345": "PHONE_INVALID", "12345": "PHONE_INVALID",
                               "call me": "PHONE_INVALID"}
            printed = [line for line in server.log if "login code for" in line]
            assert not any(n in line for line in printed for n in refused)
            sent = await client.auth.send_code("+4915112345678")  # the budget is still whole
            assert sent.delivery == "sms" and server.code_for("+4915112345678", 5)
        finally:
            await client.close()


async def test_owner_signs_in_with_an_in_app_code_when_the_sms_budget_is_spent(tmp_path, phone):
    """Anyone could lock a number out of codes with three requests (code_rate_phone). Now
    the owner's logged-in device gets the code in the app, which that flood cannot reach."""
    with server_with(tmp_path) as server:
        number = phone()
        owner = await login(server, number, "Owner")  # one SMS of the three per hour
        attacker = await fresh(server, "127.0.5.1")
        laptop = await fresh(server, "127.0.9.1")  # the owner, from another network
        try:
            with pytest.raises(RateLimited):
                for _ in range(3):
                    await attacker.auth.send_code(number, sms=True)
            attacker.max_rate_wait = 0  # give up at once instead of waiting out the limit
            flooded = 0
            with pytest.raises(RateLimited):  # and the in-app codes its network may ask for
                for _ in range(10):
                    assert (await attacker.auth.send_code(number)).delivery == "app"
                    flooded += 1
            assert flooded == 3  # code_rate_app: "5/1h burst 3" per number and prefix
            laptop.max_rate_wait = 0
            with pytest.raises(RateLimited):
                await laptop.auth.send_code(number, sms=True)  # the SMS budget is spent ...
            sent = await laptop.auth.send_code(number)  # ... the app is not
            assert sent.delivery == "app"
            notice = await code_message(owner, message_id=flooded + 1)
            code = re.search(r"Login code: (\d{6})", notice.message.text)[1]
            auth = await laptop.auth.sign_in(code, device="laptop")
            assert auth.user.id == owner.profile.user_id
        finally:
            for c in (owner, attacker, laptop):
                await c.close()


async def test_nobody_can_write_to_the_service_account(tmp_path, phone):
    with server_with(tmp_path) as server:
        number = phone()
        owner = await login(server, number, "Owner")
        other = await login(server, phone(), "Other")
        second = await fresh(server, "127.0.9.2")
        try:
            await second.auth.send_code(number)
            notice = await code_message(owner)
            service, chat_id = notice.message.sender_id, notice.message.chat_id
            (account,) = await owner.account.users([service])
            assert account.name == "Pigeon" and account.phone is None
            elsewhere = (await owner.chats.open_private(other.profile.user_id)).id
            for attempt in (lambda: owner.messages.send(chat_id, "hello?"),
                            lambda: owner.chats.open_private(service),
                            lambda: other.chats.open_private(service),
                            lambda: owner.chats.create_group("with the bot", [service]),
                            lambda: owner.messages.forward(chat_id, notice.message.id,
                                                           elsewhere)):
                with pytest.raises(Forbidden):
                    await attempt()
            # The owner still reads it, and marking it read writes nothing for the service.
            assert [m.text for m in await owner.messages.history(chat_id)] == \
                [notice.message.text]
            assert (await owner.messages.read(chat_id, notice.message.id)).unread_count == 0
        finally:
            for c in (owner, other, second):
                await c.close()


async def test_newcomer_with_proof_of_work_gets_past_the_accept_ration(tmp_path, phone):
    """Finding 14: while the shield rations new sockets from unknown addresses, a socket
    without a ticket is answered 503 with a challenge, and the SDK solves it and comes back
    with the ticket: the newcomer signs up."""
    with server_with(tmp_path, accept_rate_unknown="1/60s burst 1") as server:
        first = await fresh(server, "127.0.11.1")  # spends the ration for a minute
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(
                    local_addr=("127.0.11.2", 0))) as http:
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await http.ws_connect(f"{server.url}/v1/ws")
                assert refused.value.status == 503
                challenge = parse_challenge(refused.value.headers.get(HEADER))
                assert challenge is not None and challenge[1] >= 16
                ticket = format_ticket(challenge[0], solve(*challenge))
                ws = await http.ws_connect(f"{server.url}/v1/ws?pow={ticket}")
                await ws.send_bytes(HELLO)
                assert msgspec.msgpack.decode((await ws.receive(timeout=10)).data)["t"] == \
                    "welcome"
                await ws.close()
                with pytest.raises(aiohttp.WSServerHandshakeError):  # single use
                    await http.ws_connect(f"{server.url}/v1/ws?pow={ticket}")
            # The SDK does all of that by itself.
            newcomer = await login_from(server, phone(), "127.0.11.3")
            assert (await newcomer.account.me()).user.name == "Newcomer"
            await newcomer.close()
        finally:
            await first.close()


async def login_from(server: ServerProcess, number: str, address: str) -> Client:
    client = Client(server.url, Profile(), local_address=address)
    await client.connect()
    await client.auth.send_code(number)
    code = await asyncio.to_thread(server.code_for, number)
    await client.auth.sign_in(code, name="Newcomer")
    return client
