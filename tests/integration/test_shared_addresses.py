"""Bans and shared addresses (issue 7, finding 10), against a real server: a stranger who
misbehaves from an address that logged-in sessions use gets the address banned only with
evidence proportional to those sessions, and never cuts them off; a logged-in connection
that misbehaves gets its own session refused, not the address."""

import asyncio

import aiohttp
import msgspec

from pigeon.client import Client, Profile
from pigeon.testing import ServerProcess, login

from raw_support import BareWS, shielded

HELLO = msgspec.msgpack.encode({"t": "hello", "versions": [1]})
JUNK = b"\xc1 junk"


def hello(token: str) -> bytes:
    return msgspec.msgpack.encode({"t": "hello", "versions": [1], "token": token})


async def stranger_welcome(server: ServerProcess, address: str) -> bool:
    """Does a stranger (no token) from ``address`` get in?"""
    try:
        async with BareWS(server, address) as raw:
            reply = await raw.ask(HELLO)
    except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError):
        return False  # dropped at accept
    return reply is not None and reply["t"] == "welcome"


async def device(server: ServerProcess, token: str, address: str) -> Client:
    client = Client(server.url, Profile(token=token), local_address=address)
    await asyncio.wait_for(client.connect(), 15)
    return client


async def test_junk_from_a_shared_address_bans_strangers_but_not_its_logged_in_users(
        tmp_path, phone):
    nat = "127.0.10.1"
    with shielded(tmp_path, ban_strikes=5) as server:
        friend = await login(server, phone(), "Friend")
        seed = await login(server, phone(), "Resident")
        token = seed.profile.token
        await seed.close()
        resident = await device(server, token, nat)  # logged in from the office NAT
        chat = await resident.chats.open_private(friend.profile.user_id)
        sent = []
        junk = 0
        for _ in range(40):  # a stranger behind the same NAT sends junk, reconnecting
            if not await stranger_welcome(server, nat):
                break
            async with BareWS(server, nat) as raw:
                await raw.ask(HELLO)
                while (await raw.ask(JUNK)) is not None:
                    junk += 1
                    # ... while the resident keeps chatting
                    message = await asyncio.wait_for(
                        resident.messages.send(chat.id, f"m{junk}"), 10)
                    sent.append(message.message.text)
                junk += 1
        else:
            raise AssertionError("the junk sender was never banned")
        # The ban held strangers out and left the resident alone: still on its first
        # connection, still sending.
        after = await asyncio.wait_for(resident.messages.send(chat.id, "still here"), 10)
        assert after.message.text == "still here" and resident.reconnects == 0
        history = await friend.messages.history(chat.id, limit=100)
        assert [m.text for m in reversed(history)] == [*sent, "still here"]
        assert junk >= 10  # 5 strikes x (1 + one logged-in session)
        # Another device with a valid token gets in through the door while the ban lasts.
        second = await device(server, token, nat)
        assert (await second.account.me()).user.name == "Resident"
        # The banned stranger does not, at any door.
        assert not await stranger_welcome(server, nat)
        async with BareWS(server, nat) as raw:
            refused = await raw.ask(hello("pgn_not-a-token"))
            assert refused is None or refused["t"] == "error"
        for client in (second, resident, friend):
            await client.close()


async def test_bogus_token_hellos_need_evidence_in_proportion_to_the_sessions_behind(
        tmp_path, phone):
    """25 bogus-token hellos from one address used to ban it (a reverse proxy, a NAT) for
    everyone; with three logged-in sessions behind it the ban needs 20 x (1 + 3) strikes."""
    proxy = "127.0.11.1"
    with shielded(tmp_path) as server:  # default ban_strikes = 20
        tokens, ids = [], []
        for n in range(3):
            seed = await login(server, phone(), f"Member {n}")
            tokens.append(seed.profile.token)
            ids.append(seed.profile.user_id)
            await seed.close()
        members = [await device(server, token, proxy) for token in tokens]
        chat = await members[0].chats.open_private(ids[1])

        async def bogus_hello() -> None:
            try:
                async with BareWS(server, proxy) as raw:
                    await raw.ask(hello("pgn_guessing"))
            except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError):
                pass

        for _ in range(25):
            await bogus_hello()
        assert await stranger_welcome(server, proxy), "25 bad tokens banned a shared address"
        tries = 25
        while await stranger_welcome(server, proxy):
            await bogus_hello()
            tries += 1
            assert tries <= 200, "never banned"
        assert tries >= 80
        for member in members:
            assert member.reconnects == 0
        reply = await asyncio.wait_for(members[1].messages.send(chat.id, "fine here"), 10)
        assert reply.message.text == "fine here"
        again = await device(server, tokens[2], proxy)  # reconnecting with a token still works
        await again.close()
        for member in members:
            await member.close()


async def test_a_logged_in_connection_that_misbehaves_bans_its_session_not_the_address(
        tmp_path, phone):
    nat = "127.0.12.1"
    with shielded(tmp_path, ban_strikes=5) as server:
        culprit_seed = await login(server, phone(), "Culprit")
        culprit_token = culprit_seed.profile.token
        await culprit_seed.close()
        neighbour_seed = await login(server, phone(), "Neighbour")
        neighbour = await device(server, neighbour_seed.profile.token, nat)
        await neighbour_seed.close()
        async with BareWS(server, nat) as raw:
            assert (await raw.ask(hello(culprit_token)))["t"] == "welcome"
            replies = []
            while (reply := await raw.ask(JUNK)) is not None:
                replies.append(reply["code"])
                assert len(replies) <= 50, "never cut off"
            assert replies[:4] == ["MALFORMED_FRAME"] * 4
        # The culprit's session is refused for now, with the time it has to wait ...
        async with BareWS(server, nat) as raw:
            refused = await raw.ask(hello(culprit_token))
        assert refused["code"] == "BANNED" and refused["retry_after"] > 500
        # ... and nobody else is: not a stranger at that address, not the neighbour.
        assert await stranger_welcome(server, nat)
        assert (await neighbour.account.me()).user.name == "Neighbour"
        assert neighbour.reconnects == 0
        await neighbour.close()
