"""The sticker commands as a person types them (issue 10's CLI contract): an artist makes
and publishes a set, a friend finds, installs and sends its stickers, `receive --json`
shows them."""

from __future__ import annotations

import json

from cli_support import ok, one_error_line, pigeon, sign_up
from sticker_images import animation, jpeg, png


def test_the_sticker_commands_from_making_a_set_to_sending_one(server, phone, tmp_path):
    artist, fan = tmp_path / "artist", tmp_path / "fan"
    sign_up(server, artist, phone(), "Ada", "ada_art")
    sign_up(server, fan, phone(), "Finn", "finn_fan")
    (tmp_path / "cat.png").write_bytes(png(300, 200))
    (tmp_path / "dog.jpg").write_bytes(jpeg(200, 300))
    (tmp_path / "wave.gif").write_bytes(animation("GIF", frames=3))

    assert "created sticker set owls" in ok(artist, "stickers", "create", "Owls",
                                            "--title", "Night owls")
    assert "added sticker 1" in ok(artist, "stickers", "add", "owls", str(tmp_path / "cat.png"),
                                   "--emoji", "🦉", "--emoji", "😺")
    ok(artist, "stickers", "add", "owls", str(tmp_path / "dog.jpg"), "--emoji", "🐶")
    ok(artist, "stickers", "add", "owls", str(tmp_path / "wave.gif"), "--emoji", "👋")
    ok(artist, "stickers", "move", "owls", "3", "1")
    assert "has 2 stickers" in ok(artist, "stickers", "remove", "owls", "2")
    shown = ok(artist, "stickers", "show", "owls")
    assert "[not published]" in shown and "1. 👋" in shown and "animated" in shown
    assert "2. 🐶" in shown
    published = ok(artist, "stickers", "publish", "owls")
    assert f"{server.url}/stickers/owls" in published

    assert "owls  Night owls by Ada, 2 stickers" in ok(fan, "stickers", "search", "night")
    assert "installed owls" in ok(fan, "stickers", "install", "OWLS")
    assert "owls  Night owls by Ada, 2 stickers [installed]" in ok(fan, "stickers", "list")

    assert ok(fan, "send", "--to", "@ada_art", "--sticker", "owls:2").startswith("sent chat:")
    ok(fan, "send", "--to", "@ada_art", "--sticker-emoji", "👋")
    got = [json.loads(line) for line in ok(artist, "receive", "--json").splitlines()]
    stickers = [g["sticker"] for g in got if "sticker" in g]
    files = [line.rsplit("file ", 1)[1] for line in shown.splitlines() if "file " in line]
    assert stickers == [{"set": "owls", "index": 2, "emoji": "🐶", "file_id": files[1]},
                        {"set": "owls", "index": 1, "emoji": "👋", "file_id": files[0]}]
    assert all(g["text"] == "" for g in got if "sticker" in g)
    assert "uninstalled owls" in ok(fan, "stickers", "uninstall", "owls")

    # Refusals: one line each, with the code.
    refused = pigeon(fan, "send", "--to", "@ada_art", "--sticker-emoji", "👋")
    assert refused.returncode == 1 and "[STICKER_NOT_FOUND]" in one_error_line(refused)
    # (who may change whose set, and bad images: tests/integration/test_stickers.py)
    usage = pigeon(fan, "send", "--to", "@ada_art", "--sticker", "owls:1", "and text")
    assert usage.returncode == 2, usage.stderr
