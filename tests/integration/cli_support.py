"""Running `pigeon` as a person would, in a shell: helpers for the CLI's integration tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

TIMEOUT = 60  # seconds any one command may take before the test fails


def pigeon(profile: Path | str | None, *args: str, stdin: str | None = None,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``pigeon [--profile PROFILE] ARGS...``; a Path profile is passed as a path."""
    head = [] if profile is None else ["--profile", str(profile)]
    return subprocess.run([sys.executable, "-m", "pigeon", *head, *args], input=stdin,
                          capture_output=True, text=True, timeout=TIMEOUT,
                          env={**os.environ, **(env or {})})


def ok(profile: Path | str | None, *args: str, stdin: str | None = None,
       env: dict[str, str] | None = None) -> str:
    result = pigeon(profile, *args, stdin=stdin, env=env)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def sign_up(server, profile: Path | str, phone: str, name: str,  # type: ignore[no-untyped-def]
            username: str | None = None) -> None:
    ok(profile, "register", "--server", server.url, phone)
    ok(profile, "verify", server.code_for(phone), "--name", name)
    if username is not None:
        ok(profile, "username", "set", username)


def second_device(server, profile: Path | str, number: str) -> None:  # type: ignore[no-untyped-def]
    """Log ``profile`` in as another device of the account of ``number`` (code by SMS)."""
    ok(profile, "register", "--sms", "--server", server.url, number)
    ok(profile, "verify", server.code_for(number))


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single line a failed command printed on stderr (and it printed nothing else)."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


class Follower:
    """``pigeon receive --follow`` in the background, its output collected line by line."""

    def __init__(self, profile: Path | str, *args: str, env: dict[str, str] | None = None,
                 cwd: Path | None = None):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pigeon", "--profile", str(profile), "receive", "--follow",
             *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env={**os.environ, **(env or {})}, cwd=cwd)
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._cond = threading.Condition()
        for stream, sink in ((self.proc.stdout, self.lines), (self.proc.stderr, self.errors)):
            threading.Thread(target=self._read, args=(stream, sink), daemon=True).start()

    def _read(self, stream, sink: list[str]) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            with self._cond:
                sink.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._ended += 1
            self._cond.notify_all()

    _ended = 0  # output streams read to their end

    def wait_for(self, text: str, timeout: float = TIMEOUT) -> str:
        """The first output line containing ``text``; fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = next((line for line in self.lines if text in line), None)
                if found is not None:
                    return found
                if self._ended == 2:
                    raise AssertionError(f"follower exited without {text!r}: {self.errors}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {text!r} in {self.lines} / {self.errors}")
                self._cond.wait(min(remaining, 0.5))

    def stop(self) -> int:
        """Ctrl-C, as a person stops it; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT
        return self.proc.wait(TIMEOUT)

    def wait(self) -> int:
        return self.proc.wait(TIMEOUT)

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def received_texts(output: str) -> list[str]:
    """The texts of the messages in ``receive --json`` output; the other lines (edits,
    deletions, read receipts...: objects with a ``"type"``) left out."""
    return [obj["text"] for obj in map(json.loads, output.splitlines()) if "type" not in obj]
