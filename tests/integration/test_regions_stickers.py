"""Sticker sets across regions (issue 12, deliverable 6): a set published in its artist's
region is found, viewed, installed and sent by someone homed in another region with the
CLI's commands unchanged; its images are served by that person's own region; an installed
set follows its region's while that answers, stays usable while it is away, and a set
never fetched is REGION_UNAVAILABLE then. Two regions as in test_regions.py: Ada in a,
Finn and Gus in b."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import aiohttp
import msgspec
import nats
import pytest
from cli_support import ok, one_error_line, pigeon, sign_up
from nats_support import nats_client
from sticker_images import jpeg, png
from test_regions_events import uk_phone

from pigeon.protocol.regions import SetAsk, SetFound, encode
from pigeon.testing_regions import RegionNode as Region

pytestmark = pytest.mark.slow


async def _image(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.read()


async def test_a_set_of_another_region_is_found_installed_and_sent_with_the_cli(
        regions: tuple[Region, Region], phone: Callable[[], str], tmp_path: Path) -> None:
    a, b = regions
    artist, fan, friend = tmp_path / "ada", tmp_path / "finn", tmp_path / "gus"
    tag = os.getpid() % 1000
    sign_up(a.node, artist, phone(), "Ada", f"ada_xr{tag}")
    sign_up(b.node, fan, uk_phone(), "Finn", f"finn_xr{tag}")
    sign_up(b.node, friend, uk_phone(), "Gus", f"gus_xr{tag}")
    (tmp_path / "cat.png").write_bytes(png(300, 200))
    (tmp_path / "dog.jpg").write_bytes(jpeg(200, 300))
    ok(artist, "stickers", "create", "Owls", "--title", "Night owls", "--licence", "CC0")
    ok(artist, "stickers", "add", "owls", str(tmp_path / "cat.png"), "--emoji", "🦉")
    ok(artist, "stickers", "add", "owls", str(tmp_path / "dog.jpg"), "--emoji", "🐶")
    ok(artist, "stickers", "publish", "owls")
    ok(artist, "stickers", "create", "drafts", "--title", "Not yet")
    ok(artist, "stickers", "add", "drafts", str(tmp_path / "cat.png"), "--emoji", "🐱")
    at_home = ok(artist, "stickers", "show", "owls")
    files = [line.rsplit("file ", 1)[1] for line in at_home.splitlines() if "file " in line]

    # Finn, in b, views the set (b asks a), installs it, and finds it by emoji.
    shown = ok(fan, "stickers", "show", "OWLS")
    assert "owls  Night owls by Ada, 2 stickers" in shown and "licence: CC0" in shown
    assert [line for line in shown.splitlines() if "file " in line] == [
        line for line in at_home.splitlines() if "file " in line]
    assert f"{b.node.url}/stickers/owls" in shown  # the page on his own region's server
    assert "installed owls" in ok(fan, "stickers", "install", "owls")
    assert "[installed]" in ok(fan, "stickers", "list")
    # b serves the images itself, the same bytes as a.
    for file_id in files:
        assert await _image(f"{b.node.url}/stickers/files/{file_id}.webp") == \
            await _image(f"{a.node.url}/stickers/files/{file_id}.webp")
    # Unknown and unpublished sets are not found anywhere (both regions answered).
    for name in ("nosuch", "drafts"):
        refused = pigeon(fan, "stickers", "show", name)
        assert refused.returncode == 1
        assert "[STICKER_SET_NOT_FOUND]" in one_error_line(refused)

    # A name taken in b by an unpublished set is b's: Ada's set of that name is not reached.
    ok(artist, "stickers", "create", "wrens", "--title", "Ada's wrens")
    ok(artist, "stickers", "add", "wrens", str(tmp_path / "cat.png"), "--emoji", "🐦")
    ok(artist, "stickers", "publish", "wrens")
    ok(friend, "stickers", "create", "wrens", "--title", "Gus's wrens")
    async with nats_client(a.nats.url) as nc:
        asked = await nc.subscribe("pigeon.region.a.sticker_set")  # beside a's node
        await nc.flush()
        for _ in range(3):  # a is asked the first time only (for a minute)
            refused = pigeon(fan, "stickers", "show", "wrens")
            assert "[STICKER_SET_NOT_FOUND]" in one_error_line(refused)
        await nc.flush()  # a's server handed us each ask before answering our ping
        assert asked.pending_msgs == 1
    assert "Gus's wrens by Gus, 0 stickers [not published]" in ok(friend, "stickers", "show",
                                                                  "wrens")

    # A region hands out only sets of its own people: b has a copy of owls, and says no;
    # a malformed ask gets no answer at all.
    async with nats_client(a.nats.url) as nc:
        for region, has in (("a", True), ("b", False)):
            reply = await nc.request(f"pigeon.region.{region}.sticker_set",
                                     encode(SetAsk(name="owls")), timeout=5)
            found = msgspec.msgpack.decode(reply.data, type=SetFound).set
            assert (found is not None) == has
        with pytest.raises(nats.errors.TimeoutError):
            await nc.request("pigeon.region.a.sticker_set", b"\x81\xa4name\xa1x", timeout=0.5)

    # Finn sends its stickers to Ada (in a) and to Gus (in b), by number and by emoji.
    assert ok(fan, "send", "--to", f"@ada_xr{tag}", "--sticker", "owls:2").startswith("sent")
    ok(fan, "send", "--to", f"@gus_xr{tag}", "--sticker-emoji", "🦉")
    got = [json.loads(line) for line in ok(artist, "receive", "--json").splitlines()]
    assert [g["sticker"]["file_id"] for g in got if "sticker" in g] == [files[1]]
    got = [json.loads(line) for line in ok(friend, "receive", "--json").splitlines()]
    assert [g["sticker"] for g in got if "sticker" in g] == [
        {"set": "owls", "index": 1, "emoji": "🦉", "file_id": files[0]}]

    # The set grows in a; b, asking again on every view from now on, follows.
    b.node.kill()
    b.node.env = {**(b.node.env or {}), "PIGEON_REGION_STICKER_REFRESH": "0"}
    b.node.start()
    (tmp_path / "moon.png").write_bytes(png(200, 200, (20, 20, 120)))
    ok(artist, "stickers", "add", "owls", str(tmp_path / "moon.png"), "--emoji", "🌙")
    shown = ok(fan, "stickers", "show", "owls")
    assert "owls  Night owls by Ada, 3 stickers [installed]" in shown
    moon = [line.rsplit("file ", 1)[1] for line in shown.splitlines() if "3. 🌙" in line]
    assert await _image(f"{b.node.url}/stickers/files/{moon[0]}.webp") == \
        await _image(f"{a.node.url}/stickers/files/{moon[0]}.webp")

    # a's node away: the installed set serves in b as it was last fetched (the refresh finds
    # nobody to ask); a set never fetched does not.
    a.node.kill()
    try:
        assert "owls  Night owls by Ada, 3 stickers" in ok(fan, "stickers", "show", "owls")
        ok(fan, "send", "--to", f"@gus_xr{tag}", "--sticker", "owls:2")
        got = [json.loads(line) for line in ok(friend, "receive", "--json").splitlines()]
        assert [g["sticker"]["index"] for g in got if "sticker" in g] == [2]
        refused = pigeon(fan, "stickers", "show", "larks")
        assert refused.returncode == 1
        assert "[REGION_UNAVAILABLE]" in one_error_line(refused)
        refused = pigeon(fan, "stickers", "install", "larks")
        assert "[REGION_UNAVAILABLE]" in one_error_line(refused)
    finally:
        a.node.start()
