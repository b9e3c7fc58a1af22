"""Operator endpoints and public HTTP (issue 7, finding 17), against a real server: /metrics
and /shield live on the operator listener only (with a bearer token when one is set), and
plain HTTP on the public port is rate-limited per address while logged-in users carry on."""

import asyncio
import os
import subprocess
import sys

import aiohttp

from pigeon.testing import ServerProcess, login

TOKEN = "operator-secret-0123456789"


def server_with(tmp_path, **env) -> ServerProcess:
    return ServerProcess(tmp_path / "data", env={f"PIGEON_{k.upper()}": str(v)
                                                 for k, v in env.items()})


async def status_of(url: str, headers: dict[str, str] | None = None) -> int:
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=headers or {}) as response:
            await response.read()
            return response.status


async def test_metrics_and_shield_are_served_only_on_the_operator_listener(server, phone):
    client = await login(server, phone(), "Metric")
    await client.close()
    for path in ("/metrics", "/shield"):
        assert await status_of(server.url + path) == 404
        assert await status_of(server.operator_url + path) == 200
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url + "/healthz") as response:
            assert await response.json() == {"status": "ok"}  # no version, no load
        async with http.get(server.operator_url + "/healthz") as response:
            health = await response.json()
            assert set(health) == {"status", "version", "connections", "store", "bus"}
            assert health["store"] == {"reachable": True} and health["status"] == "ok"
        async with http.get(server.operator_url + "/metrics") as response:
            assert 'pigeon_requests_total{method="auth.sign_in",outcome="ok"} 1.0' in \
                await response.text()


async def test_the_operator_token_is_required_when_set(tmp_path):
    with server_with(tmp_path, operator_token=TOKEN) as server:
        assert await status_of(server.operator_url + "/shield") == 401
        assert await status_of(server.operator_url + "/metrics",
                               {"Authorization": "Bearer wrong-token-0123456789"}) == 401
        assert await status_of(server.operator_url + "/metrics",
                               {"Authorization": f"Bearer {TOKEN}"}) == 200
        command = [sys.executable, "-m", "pigeon", "shield", "status", "--operator",
                   server.operator_url]
        env = {k: v for k, v in os.environ.items() if k != "PIGEON_OPERATOR_TOKEN"}
        refused = subprocess.run(command, capture_output=True, text=True, timeout=30, env=env)
        assert refused.returncode == 1 and "token" in refused.stderr
        shown = subprocess.run([*command, "--token", TOKEN], capture_output=True, text=True,
                               timeout=30, env=env)
        assert shown.returncode == 0 and shown.stdout.startswith("shield: on")
        public = subprocess.run([sys.executable, "-m", "pigeon", "shield", "status",
                                 "--operator", server.url, "--token", TOKEN],
                                capture_output=True, text=True, timeout=30, env=env)
        assert public.returncode == 1 and "operator listener" in public.stderr


async def test_a_flood_of_public_http_gets_429_while_logged_in_users_are_served(
        tmp_path, phone):
    with server_with(tmp_path, http_rate="5/1s burst 10") as server:
        alice = await login(server, phone(), "Alice")
        bob = await login(server, phone(), "Bob")
        chat = await alice.chats.open_private(bob.profile.user_id)
        answers: dict[int, int] = {}
        bodies: list[dict] = []

        async def flooder(n: int) -> None:
            connector = aiohttp.TCPConnector(local_addr=("127.0.40.1", 0))
            async with aiohttp.ClientSession(connector=connector) as http:
                for _ in range(50):
                    try:
                        async with http.get(server.url + "/healthz") as response:
                            answers[response.status] = answers.get(response.status, 0) + 1
                            if response.status == 429:
                                bodies.append(await response.json())
                    except aiohttp.ClientError:
                        answers[0] = answers.get(0, 0) + 1

        flood = asyncio.gather(*(flooder(n) for n in range(8)))
        sent = [await asyncio.wait_for(alice.messages.send(chat.id, f"m{i}"), 10)
                for i in range(20)]
        await flood
        assert [s.message.text for s in sent] == [f"m{i}" for i in range(20)]
        # 400 asked for, burst 10 then 5 a second: the rest got 429 (and past ban_strikes of
        # those the address was banned, so its new connections were dropped at accept).
        assert answers.get(429, 0) >= 10 and answers.get(200, 0) < 150, answers
        assert bodies[0]["code"] == "RATE_LIMITED" and bodies[0]["retry_after"] > 0
        # Another address is not held back by this one's flood.
        connector = aiohttp.TCPConnector(local_addr=("127.0.40.2", 0))
        async with aiohttp.ClientSession(connector=connector) as http:
            async with http.get(server.url + "/healthz") as response:
                assert response.status == 200
        await alice.close()
        await bob.close()
