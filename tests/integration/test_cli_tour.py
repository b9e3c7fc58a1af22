"""The README's five-minute tour, run from the README's own text (issue 11, bug 3: it broke
at its third step, `username set bob`, and added a @carol it never created).

Each command of the tour's first ``sh`` block is run in order, as pasted into a shell, against
a fresh server with the real default for groups (``contacts``); the only substitutions are the
server's URL and the login codes the server printed. A comment ``# -> TEXT`` after a command is
what it prints: each part of TEXT between ``...`` must appear, in order."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from cli_support import TIMEOUT, Follower

from pigeon.testing import ServerProcess

README = Path(__file__).resolve().parents[2] / "README.md"
TOUR_SERVER = "http://127.0.0.1:8700"
LOGGED_OUT = "error: this device was logged out from another device [SESSION_INVALID]"


def tour() -> list[tuple[str, str | None]]:
    """(command, expected output or None) for each command of the tour, in order."""
    section = README.read_text().split("## A five-minute tour", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    steps = []
    for line in block.splitlines():
        command, comment = split_comment(line)
        if command.strip():
            expected = comment.strip()[2:].strip() if comment.strip().startswith("->") else None
            steps.append((command.strip(), expected))
    return steps


def split_comment(line: str) -> tuple[str, str]:
    """``line`` cut at the first ``#`` that starts a shell comment (outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i], line[i + 1:]
    return line, ""


def in_order(text: str, expected: str) -> bool:
    at = 0
    for part in (p.strip() for p in expected.split("...")):
        at = text.find(part, at)
        if at < 0:
            return False
        at += len(part)
    return True


def test_the_readme_tour_works_pasted_in_order(tmp_path):
    steps = tour()
    assert len(steps) > 30 and any("carol" in command for command, _ in steps)
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    drawings = artists_drawings(work)  # the sticker steps add the artist's own files
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    phones: dict[str, str] = {}  # profile -> the number its last `register` asked a code for
    in_app: dict[str, str | None] = {}  # profile -> the code another device received, if read
    follower: Follower | None = None
    # The real defaults: people who never wrote to the adder are invited, not added; a
    # stranger's first message is a request.
    real = {"PIGEON_DEFAULT_WHO_CAN_ADD": "contacts", "PIGEON_DEFAULT_WHO_CAN_MESSAGE": "contacts"}
    with ServerProcess(tmp_path / "data", env=real) as srv:
        try:
            for command, expected in steps:
                stdin = None
                words = shlex.split(command)
                if "|" in words:  # only `echo TEXT | pigeon ...`
                    cut = words.index("|")
                    assert words[0] == "echo", command
                    stdin, words = " ".join(words[1:cut]) + "\n", words[cut + 1:]
                assert words[0] == "pigeon", command
                words = [srv.url if w == TOUR_SERVER else w for w in words[1:]]
                if words[0] == "admin":  # the operator listener is on a port of its own
                    words += ["--operator", srv.operator_url]
                profile = words[words.index("--profile") + 1] if "--profile" in words else "-"
                if "register" in words:
                    phones[profile] = words[-1]
                if "verify" in words:
                    at = words.index("verify") + 1
                    code = in_app.pop(profile, None)
                    words[at] = code if code is not None else srv.code_for(phones[profile])
                if words[-2:] == ["receive", "--follow"]:
                    follower = Follower(profile, env=env, cwd=work)
                    continue
                if "terminate" in words and follower is not None:
                    # The follower has seen the group's messages: it is connected and following.
                    follower.wait_for("welcome, Bob")
                    follower.wait_for("hello everyone")  # from Bob's other device
                result = subprocess.run([sys.executable, "-m", "pigeon", *words], input=stdin,
                                        capture_output=True, text=True, timeout=TIMEOUT,
                                        env=env, cwd=work)
                assert result.returncode == 0, (command, result.stdout, result.stderr)
                assert "Traceback" not in result.stderr, (command, result.stderr)
                if "register" in words and "other logged-in devices" in result.stdout:
                    in_app[profile] = None  # the code went to the account's other devices
                if "receive" in words:
                    for waiting in [p for p, code in in_app.items() if code is None]:
                        found = re.search(r"\b(\d{6})\b", result.stdout)
                        assert found, ("no login code in", command, result.stdout)
                        in_app[waiting] = found.group(1)
                if expected is not None:
                    assert in_order(result.stdout, expected), (command, result.stdout)
            assert follower is not None
            # `sessions terminate 3` logged bob-laptop out: its follower said so and stopped.
            assert follower.wait() == 1 and follower.errors == [LOGGED_OUT]
        finally:
            if follower is not None:
                follower.__exit__()
    # profiles went to ~/.config/pigeon/profiles, not here
    assert sorted(work.iterdir()) == sorted(drawings)


def artists_drawings(work: Path) -> list[Path]:
    """owl.png and wave.gif, which the tour's artist has drawn: a transparent PNG and a
    two-frame animated GIF."""
    from PIL import Image, ImageDraw

    owl = Image.new("RGBA", (300, 240), (0, 0, 0, 0))
    ImageDraw.Draw(owl).ellipse((40, 20, 260, 220), fill=(120, 90, 40, 255))
    frames = [Image.new("RGB", (200, 200), color) for color in ("navy", "gold")]
    owl.save(work / "owl.png")
    frames[0].save(work / "wave.gif", save_all=True, append_images=frames[1:], duration=500,
                   loop=0)
    return [work / "owl.png", work / "wave.gif"]
