"""`pigeon serve` as operators run it: health, metrics, TLS, refusing unsafe listening."""

import shutil
import subprocess
import sys

import aiohttp
import pytest

from pigeon.testing import ServerProcess, login


async def test_healthz_and_metrics(server, phone):
    client = await login(server, phone(), "Metric")
    await client.close()
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url + "/healthz") as r:
            assert r.status == 200 and (await r.json())["status"] == "ok"
        async with http.get(server.operator_url + "/metrics") as r:
            text = await r.text()
    assert 'pigeon_requests_total{method="auth.sign_in",outcome="ok"} 1.0' in text
    assert "pigeon_store_commits_total" in text and "pigeon_connections" in text


def test_refuses_public_address_without_tls(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pigeon", "serve", "--data", str(tmp_path), "--listen",
         "0.0.0.0:0"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "without TLS" in result.stderr


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_tls(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    with ServerProcess(tmp_path / "data", "--tls-cert", str(cert), "--tls-key", str(key)) as srv:
        assert any("listening on wss://" in line for line in srv.log)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"https://127.0.0.1:{srv.port}/healthz", ssl=False) as r:
                assert r.status == 200
            with pytest.raises(aiohttp.ClientError):
                await http.get(f"http://127.0.0.1:{srv.port}/healthz")
