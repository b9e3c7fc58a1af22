"""The webhook code sender, against a real SMS-gateway stand-in on loopback."""

import pytest
from aiohttp import web

from pigeon.client import Client, Profile
from pigeon.protocol.errors import Unavailable
from pigeon.testing import ServerProcess


@pytest.fixture
async def gateway():
    received: list[dict] = []
    state = {"status": 200}

    async def handle(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=state["status"])

    app = web.Application()
    app.router.add_post("/sms", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/sms", received, state
    await runner.cleanup()


async def test_codes_go_to_the_webhook_and_its_failures_are_reported(tmp_path, gateway, phone):
    url, received, state = gateway
    with ServerProcess(tmp_path / "data", "--code-sender", "webhook",
                       "--code-webhook-url", url) as server:
        client = Client(server.url, Profile())
        await client.connect()
        try:
            number = phone()
            sent = await client.auth.send_code(number)
            assert received[-1]["phone"] == number and received[-1]["expires_in"] == 300
            code = received[-1]["code"]
            assert len(code) == sent.length == 6
            assert not any(code in line for line in server.log)  # never in the server's log
            auth = await client.auth.sign_in(code, name="Gateway User")
            assert auth.user.name == "Gateway User"

            state["status"] = 503
            with pytest.raises(Unavailable) as err:
                await client.auth.send_code(phone())
            assert "gateway" in err.value.message
        finally:
            await client.close()


async def test_gateway_failures_are_logged_on_the_server_without_secrets(tmp_path, gateway,
                                                                           phone):
    """Issue 11, bug 8: only the person asking for a code heard of a failing gateway."""
    url, received, state = gateway
    with ServerProcess(tmp_path / "data", "--code-sender", "webhook",
                       "--code-webhook-url", url + "?token=gateway-secret") as server:
        client = Client(server.url, Profile())
        await client.connect()
        try:
            state["status"] = 503
            number = phone()
            with pytest.raises(Unavailable):
                await client.auth.send_code(number)
            code = received[-1]["code"]
        finally:
            await client.close()
        server.stop()
    failures = [line for line in server.log if "code webhook" in line]
    assert len(failures) == 1 and "HTTP 503" in failures[0] and url in failures[0]
    log = "".join(server.log)
    assert code not in log and "gateway-secret" not in log and number not in log
