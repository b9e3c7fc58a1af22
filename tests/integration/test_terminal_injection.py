"""Issue 7, finding 16, against a real server: a stranger cannot forge lines on someone's
terminal, and names, titles, usernames and device names refuse hidden characters."""

import asyncio
import json
import subprocess
import sys

import pytest

from pigeon.client import Client, Profile
from pigeon.protocol.errors import InvalidArgument
from pigeon.testing import login

FORGED = "\x1b[2K\rAlice (@alice): fake"
RETITLE = "\x1b]0;you have been pwned\x07ok"
MULTILINE = "see below\n[chat:1 #99] 2026-01-01 00:00 Alice (@alice): also fake"
HIDDEN = ["\x00", "\x1b[2K\rAlice", "Bob\u202egnp.exe", "\u2066Bob\u2069", "Bob\u200b",
          "Bob\x9b31m", "Bob\x7f"]


def cli(profile, *args) -> str:
    result = subprocess.run([sys.executable, "-m", "pigeon", "--profile", str(profile), *args],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


async def test_a_stranger_cannot_forge_lines_on_the_terminal(server, phone, tmp_path):
    pb = phone()
    bob = await login(server, pb, "Bob", username="bob_term", profile=tmp_path / "bob")
    await bob.close()
    laptop = await login(server, pb, "Bob", profile=tmp_path / "bob-laptop")
    await laptop.close()
    mallory = await login(server, phone(), "Mallory")
    try:
        found = await mallory.account.resolve_username("@bob_term")
        chat = await mallory.chats.open_private(found.id)
        for text in (FORGED, RETITLE, MULTILINE):
            await mallory.messages.send(chat.id, text)
    finally:
        await mallory.close()

    shown = await asyncio.to_thread(cli, tmp_path / "bob", "receive")
    assert "\x1b" not in shown and "\r" not in shown and "\x07" not in shown
    assert "Mallory: \\x1b[2K\\rAlice (@alice): fake\n" in shown
    assert "Mallory: \\x1b]0;you have been pwned\\x07ok\n" in shown
    assert "Mallory: see below\n  | [chat:1 #99] 2026-01-01 00:00 Alice" in shown
    # Every line is a message of its own or the indented continuation of one.
    assert all(line.startswith(("[chat:", "  | ")) for line in shown.splitlines())

    raw = await asyncio.to_thread(cli, tmp_path / "bob-laptop", "receive", "--json")
    assert "\x1b" not in raw and "\r" not in raw  # escaped inside the JSON strings ...
    assert [json.loads(line)["text"] for line in raw.splitlines()] == [
        FORGED, RETITLE, MULTILINE]  # ... which decode to exactly what was sent


@pytest.mark.parametrize("bad", HIDDEN)
async def test_names_titles_usernames_and_devices_refuse_hidden_characters(server, phone, bad):
    alice = await login(server, phone(), "Alice")
    try:
        refusals = {
            "NAME_INVALID": alice.account.set_name(bad),
            "TITLE_INVALID": alice.chats.create_group(bad, []),
            "USERNAME_INVALID": alice.account.set_username("alice" + bad),
        }
        for code, call in refusals.items():
            with pytest.raises(InvalidArgument) as err:
                await call
            assert err.value.code == code
            assert "\x1b" not in err.value.message and "\u202e" not in err.value.message
        group = await alice.chats.create_group("Fine", [])
        with pytest.raises(InvalidArgument) as err:
            await alice.chats.set_title(group.id, "Fine" + bad)
        assert err.value.code == "TITLE_INVALID"
        assert (await alice.account.me()).user.name == "Alice"  # nothing was changed
    finally:
        await alice.close()

    # Signing up with such a name, or in with such a device name, is refused, and the code
    # stays good for a correct try.
    for field in ("name", "device"):
        newcomer = Client(server.url, Profile())
        await newcomer.connect()
        try:
            number = phone()
            await newcomer.auth.send_code(number)
            code = await asyncio.to_thread(server.code_for, number)
            with pytest.raises(InvalidArgument) as err:
                await newcomer.auth.sign_in(code, name=bad if field == "name" else "New",
                                            device=bad if field == "device" else "")
            assert err.value.code == f"{field.upper()}_INVALID"
            auth = await newcomer.auth.sign_in(code, name="New", device="laptop")
            assert auth.user.name == "New"
            (session,) = await newcomer.sessions.list()
            assert session.device == "laptop"
        finally:
            await newcomer.close()
