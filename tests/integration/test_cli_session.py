"""A device whose session is terminated from another one (issue 11, bug 2)."""

from __future__ import annotations

import asyncio

import pytest
from cli_support import Follower, ok, one_error_line, pigeon, sign_up

from pigeon.protocol.errors import Unauthorized
from pigeon.testing import login

LOGGED_OUT = "this device was logged out from another device"


def test_a_terminated_follower_is_told_at_once_and_so_is_the_next_command(server, phone,
                                                                          tmp_path):
    """`receive --follow` used to wait silently for ever once its session was terminated,
    and the next command said only `Error: not logged in`."""
    alice, bob, laptop = tmp_path / "alice", tmp_path / "bob", tmp_path / "laptop"
    sign_up(server, alice, phone(), "Alice", "alice_s")
    number = phone()
    sign_up(server, bob, number, "Bob", "bob_s")
    ok(laptop, "register", "--server", server.url, number)
    ok(laptop, "verify", server.code_for(number), "--device", "laptop")
    with Follower(laptop) as follower:
        ok(alice, "send", "--to", "@bob_s", "are you there?")
        follower.wait_for("are you there?")  # connected and following
        laptop_session = next(line.split()[0] for line in ok(bob, "sessions", "list")
                              .splitlines() if "laptop" in line)
        ok(bob, "sessions", "terminate", laptop_session)
        assert follower.wait() == 1
        assert follower.errors == [f"error: {LOGGED_OUT} [SESSION_INVALID]"]
    again = pigeon(laptop, "whoami")
    assert again.returncode == 1
    line = one_error_line(again)
    assert LOGGED_OUT in line and "register" in line and line.endswith("[SESSION_INVALID]")
    assert "Bob" in ok(bob, "whoami")  # the other device is untouched


def test_never_logged_in_says_so_with_its_code(tmp_path):
    result = pigeon(tmp_path / "fresh", "whoami")
    assert result.returncode == 1
    line = one_error_line(result)
    assert line.startswith("error: not logged in") and line.endswith("[AUTH_REQUIRED]")


async def test_the_sdk_ends_updates_with_the_reason(server, phone):
    number = phone()
    device = await login(server, number, "Carol")
    other = await login(server, number, "Carol")
    try:
        async def drain() -> None:
            async for _ in device.updates():
                pass

        await other.sessions.terminate(device.profile.session_id)
        with pytest.raises(Unauthorized) as err:
            await asyncio.wait_for(drain(), 30)  # it used to wait for ever
        assert err.value.code == "SESSION_INVALID" and err.value.message == LOGGED_OUT
        assert device.profile.token is None and device.profile.ended == LOGGED_OUT
    finally:
        await device.close()
        await other.close()
