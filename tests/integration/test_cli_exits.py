"""Every way a `pigeon` command ends: one line on stderr and the documented exit code
(README: 0 done, 1 refused or failed, 2 usage, 3 unreachable). Issue 11, bugs 5 and 6."""

from __future__ import annotations

import os
import subprocess
import sys

import aiohttp
import pytest
from cli_support import ok, one_error_line, pigeon, sign_up

from pigeon.testing import ServerProcess, login


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pigeon", "serve", *args],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PIGEON_OPERATOR_LISTEN": "off"})


async def test_a_second_server_on_the_same_data_directory_is_refused(tmp_path, phone):
    """Bug 5: a second `pigeon serve --data SAME` started, and messages sent through one
    never reached a follower of the other."""
    data = tmp_path / "data"
    with ServerProcess(data) as first:
        second = serve("--data", str(data), "--listen", "127.0.0.1:0")
        assert second.returncode == 1
        line = one_error_line(second)
        assert f"another pigeon server (pid {first.proc.pid}) is using data directory" in line
        client = await login(first, phone(), "Still Here")  # the first one serves on
        await client.close()
        first.kill()  # kill -9 leaves no stale lock: the kernel releases it
        first.restart()
        async with aiohttp.ClientSession() as http, http.get(first.url + "/healthz") as r:
            assert r.status == 200


@pytest.mark.parametrize("args,code,says", [
    (["--listen", "127.0.0.1:99999"], 2, "port 99999 is out of range"),
    (["--listen", "nowhere"], 2, "listen must be HOST:PORT"),
    (["--data", "/proc/nope"], 2, "cannot use data directory /proc/nope"),
])
def test_serve_refuses_bad_settings_in_one_line(tmp_path, args, code, says):
    result = serve("--data", str(tmp_path / "data"), *args)
    assert result.returncode == code
    line = one_error_line(result)
    assert line.startswith("error: ") and says in line


def test_serve_on_a_busy_port_says_so_in_one_line(server, tmp_path):
    result = serve("--data", str(tmp_path / "other"), "--listen", f"127.0.0.1:{server.port}")
    assert result.returncode == 1
    line = one_error_line(result)
    assert line == f"error: cannot listen on 127.0.0.1:{server.port}: Address already in use"


def test_every_client_exit_path(server, phone, tmp_path):
    alice, fresh = tmp_path / "alice", tmp_path / "fresh"
    number = phone()
    sign_up(server, alice, number, "Alice", "alice_x")
    cases = [
        # usage: 2
        ((fresh, "no-such-verb"), 2, "No such command"),
        ((fresh, "send"), 2, "Missing option '--to'"),
        # TEXT is optional since a sticker may take its place (issue 10): but one is needed
        ((fresh, "send", "--to", "@bob"), 2, "give TEXT, --sticker SET:N or --sticker-emoji E"),
        ((fresh, "register", "--server", "htp:/bad", phone()), 2, "not a server URL"),
        ((fresh, "register", "--server", "http://127.0.0.1:99999", phone()), 2, "bad port"),
        ((alice, "send", "--to", "bob", "hi"), 2, "neither @username, user:ID nor chat:ID"),
        ((alice, "send", "--to", "chat:²", "hi"), 2, "neither @username, user:ID nor chat:ID"),
        ((alice, "group", "add", "chat:1", "user:²"), 2, "neither @username nor user:ID"),
        # refused or failed: 1, with the code
        ((fresh, "whoami"), 1, "[AUTH_REQUIRED]"),
        ((alice, "verify", "123456"), 1, "logged in as user 1; no login code is waiting"),
        ((alice, "verify", "123456"), 1, "[CODE_EXPIRED]"),  # a second time
        ((fresh, "register", "--server", server.url, "12345"), 1, "[PHONE_INVALID]"),
        ((alice, "username", "set", "bob"), 1, "[USERNAME_INVALID]"),
        ((alice, "send", "--to", "chat:999", "hi"), 1, "[NOT_A_MEMBER]"),
        ((alice, "send", "--to", "@alice_x", "x" * 4097), 1,
         "a message can be at most 4,096 characters; this one has 4,097 [INVALID_ARGUMENT]"),
        ((tmp_path / "file" / "p", "register", "--server", server.url, phone()), 1,
         "[ENOTDIR]"),
        # unreachable: 3
        ((fresh, "register", "--server", "http://127.0.0.1:9", phone()), 3,
         "server unreachable"),
    ]
    (tmp_path / "file").write_text("not a directory")
    for (profile, *args), code, says in cases:
        result = pigeon(profile, *args)
        assert result.returncode == code, (args, result.stderr)
        line = one_error_line(result)
        assert line.startswith("error: ") and says in line, (args, line)
        assert result.stdout == "", (args, result.stdout)
    assert "Alice" in ok(alice, "whoami")  # none of it hurt the profile
