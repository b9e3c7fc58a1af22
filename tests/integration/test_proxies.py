"""Behind a reverse proxy (issue 7, finding 11), against a real server: the PROXY protocol
(v1 and v2) and X-Forwarded-For name the client, only from trusted proxies, so the sessions
list and the shield's limits and bans see real client addresses."""

import asyncio
from collections.abc import Callable

import aiohttp
import msgspec

from pigeon.client import Client, Profile
from pigeon.testing import ServerProcess, login, proxy_v1, proxy_v2

PROXY = "127.0.30.1"        # trusted
OUTSIDER = "127.0.30.2"     # not trusted
HELLO = msgspec.msgpack.encode({"t": "hello", "versions": [1]})


def server_behind(tmp_path, **env) -> ServerProcess:
    return ServerProcess(tmp_path / "data", env={f"PIGEON_{k.upper()}": str(v)
                                                 for k, v in env.items()})


class Relay:
    """A stand-in for HAProxy: accepts on loopback, connects to the server from ``bind``,
    writes ``header()`` (what HAProxy's ``send-proxy`` writes) and then pipes both ways."""

    def __init__(self, server: ServerProcess, bind: str, header: Callable[[], bytes]) -> None:
        self.server, self.bind, self.header = server, bind, header
        self.tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> "Relay":
        self.listener = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.listener.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc) -> None:
        self.listener.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _serve(self, reader, writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(
                "127.0.0.1", self.server.port, local_addr=(self.bind, 0))
        except OSError:
            writer.close()
            return
        up_writer.write(self.header())
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    @staticmethod
    async def _pipe(source, sink) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            sink.close()


async def sign_up_through(server: ServerProcess, url: str, phone: str, name: str) -> Client:
    client = Client(url, Profile())
    await asyncio.wait_for(client.connect(), 15)
    await client.auth.send_code(phone)
    code = await asyncio.to_thread(server.code_for, phone)
    await client.auth.sign_in(code, name=name, device="behind a proxy")
    return client


async def current_address(client: Client, expected: str) -> str:
    """The address the sessions list shows for this device. The server records it after
    the hello, with a write of its own, so a list read at once may still show the previous
    one: ask again (for a few seconds at most) until it shows ``expected``."""
    for _ in range(50):
        (current,) = [s for s in await client.sessions.list() if s.current]
        if current.address == expected:
            break
        await asyncio.sleep(0.1)
    return current.address


async def test_proxy_protocol_v1_and_v2_name_the_client(tmp_path, phone):
    with server_behind(tmp_path, trusted_proxies=f"{PROXY}/32", proxy_protocol=1) as server:
        v1 = lambda: proxy_v1(("203.0.113.7", 50000), ("127.0.0.1", server.port))  # noqa: E731
        v2 = lambda: proxy_v2(("2001:db8::7", 50001), ("::1", server.port))  # noqa: E731
        async with Relay(server, PROXY, v1) as relay:
            alice = await sign_up_through(server, relay.url, phone(), "Alice")
            assert await current_address(alice, "203.0.113.7") == "203.0.113.7"
        async with Relay(server, PROXY, v2) as relay:
            again = Client(relay.url, Profile(token=alice.profile.token))
            await asyncio.wait_for(again.connect(), 15)
            assert await current_address(again, "2001:db8::7") == "2001:db8::7"
            await again.close()
        await alice.close()
        # A v2 LOCAL header (the proxy's own health check) is the proxy speaking for itself.
        async with Relay(server, PROXY, lambda: proxy_v2(None)) as relay:
            async with aiohttp.ClientSession() as http:
                async with http.get(relay.url + "/healthz") as response:
                    assert response.status == 200
        # Clients that do not come through a proxy are unaffected.
        direct = await login(server, phone(), "Direct")
        assert await current_address(direct, "127.0.0.1") == "127.0.0.1"
        await direct.close()


async def test_the_header_is_believed_only_from_trusted_proxies(tmp_path, phone):
    with server_behind(tmp_path, trusted_proxies=f"{PROXY}/32", proxy_protocol=1) as server:
        header = lambda: proxy_v1(("203.0.113.8", 50000), ("127.0.0.1", server.port))  # noqa: E731
        # An outsider's PROXY line is not a header to us but a malformed HTTP request.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port,
                                                       local_addr=(OUTSIDER, 0))
        writer.write(header() + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 10)
        assert answer.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request")
        writer.close()
        # A trusted proxy that does not send the header is cut off before HTTP is parsed.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port,
                                                       local_addr=(PROXY, 0))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        # So is one with a broken header.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port,
                                                       local_addr=(PROXY, 0))
        writer.write(b"PROXY TCP4 203.0.113.8 nonsense\r\nGET /healthz HTTP/1.1\r\n\r\n")
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()


async def test_bans_behind_a_proxy_fall_on_the_client_not_the_proxy(tmp_path):
    with server_behind(tmp_path, trusted_proxies=f"{PROXY}/32", proxy_protocol=1,
                       ban_strikes=3) as server:
        def via(client: str) -> Relay:
            return Relay(server, PROXY,
                         lambda: proxy_v1((client, 40000), ("127.0.0.1", server.port)))

        async def hello(url: str, token: str | None = None) -> dict | None:
            frame = {"t": "hello", "versions": [1]} | ({"token": token} if token else {})
            try:
                async with aiohttp.ClientSession() as http:
                    async with http.ws_connect(url + "/v1/ws") as ws:
                        await ws.send_bytes(msgspec.msgpack.encode(frame))
                        msg = await ws.receive(timeout=10)
            except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError):
                return None
            if msg.type != aiohttp.WSMsgType.BINARY:
                return None
            return msgspec.msgpack.decode(msg.data)

        async with via("203.0.113.66") as guesser, via("203.0.113.67") as neighbour:
            assert (await hello(guesser.url, "pgn_guess"))["code"] == "SESSION_INVALID"
            for _ in range(2):  # the third strike bans (the connection closes at once)
                await hello(guesser.url, "pgn_guess")
            assert await hello(guesser.url) is None  # banned: dropped at accept
            assert (await hello(neighbour.url))["t"] == "welcome"  # same proxy, other client


async def test_x_forwarded_for_from_a_trusted_proxy_names_the_client(tmp_path, phone):
    with server_behind(tmp_path, trusted_proxies=f"{PROXY}/32") as server:
        user = await login(server, phone(), "Forwarded")
        token = user.profile.token
        await user.close()

        async def address_seen(bind: str, forwarded: str, expected: str) -> str:
            connector = aiohttp.TCPConnector(local_addr=(bind, 0))
            async with aiohttp.ClientSession(connector=connector) as http:
                ws = await http.ws_connect(server.url + "/v1/ws",
                                           headers={"X-Forwarded-For": forwarded})
                await ws.send_bytes(msgspec.msgpack.encode(
                    {"t": "hello", "versions": [1], "token": token}))
                assert msgspec.msgpack.decode((await ws.receive(timeout=10)).data)["t"] == \
                    "welcome"
                for n in range(50):  # the address is recorded by a write after the hello
                    await ws.send_bytes(msgspec.msgpack.encode(
                        {"t": "call", "id": n, "method": "sessions.list", "params": {}}))
                    reply = msgspec.msgpack.decode((await ws.receive(timeout=10)).data)
                    (current,) = [s for s in reply["value"] if s["current"]]
                    if current["address"] == expected:
                        break
                    await asyncio.sleep(0.1)
                await ws.close()
            return current["address"]

        # The client wrote 6.6.6.6 itself; our proxy appended what it saw: 203.0.113.9.
        assert await address_seen(PROXY, "6.6.6.6, 203.0.113.9", "203.0.113.9") == \
            "203.0.113.9"
        assert await address_seen(OUTSIDER, "203.0.113.9", OUTSIDER) == OUTSIDER  # not believed
