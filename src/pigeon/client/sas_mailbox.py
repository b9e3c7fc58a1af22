"""Verification steps that one process read from a device's inbox for another: a
``receive --follow`` (the inbox router) and a ``pigeon devices verify`` on the same profile
each read part of the inbox, so whichever reads a verification step it is not running
leaves it here, and the one running the verification takes it.

One file in the profile directory, ``verify-steps.vault``, sealed under the device vault's
key (who asked to verify whom is nobody else's business), each change a read-modify-write
under an exclusive lock on ``verify-steps.lock`` in a worker thread. Entries older than the
verification timeout are dropped; at most :data:`MAX_MAIL` are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec

from pigeon.crypto.payloads import Verification, encode_payload, read_payload
from pigeon.crypto.sas import DEFAULT_TIMEOUT
from pigeon.crypto.vault import Vault, VaultDamaged

MAILBOX_FILE, LOCK_FILE = "verify-steps.vault", "verify-steps.lock"
MAX_MAIL = 64


class Mail(msgspec.Struct, frozen=True):
    user_id: int
    device_id: int
    step: bytes  # an encoded Verification
    at: float    # wall-clock seconds: mail outlives the process that left it

    def verification(self) -> Verification | None:
        step = read_payload(self.step)
        return step if isinstance(step, Verification) else None


_decoder = msgspec.msgpack.Decoder(list[Mail])


class Mailbox:
    def __init__(self, vault: Vault, directory: Path | None,
                 wall_clock: Callable[[], float]) -> None:
        self._vault = vault.sibling(directory / MAILBOX_FILE if directory else None)
        self._lock_path = directory / LOCK_FILE if directory else None
        self._clock = wall_clock
        self._memory: list[Mail] = []  # a profile without a directory

    async def leave(self, user_id: int, device_id: int, step: Verification) -> None:
        mail = Mail(user_id, device_id, encode_payload(step), self._clock())
        await self._update(lambda box: ([*box, mail][-MAX_MAIL:], None))

    async def take(self, want: Callable[[Mail, Verification], bool]) -> list[Mail]:
        """Remove and return, oldest first, the mail ``want`` picks."""
        def pick(box: list[Mail]) -> tuple[list[Mail], list[Mail]]:
            taken = [m for m in box if (v := m.verification()) is not None and want(m, v)]
            return [m for m in box if m not in taken], taken
        return await self._update(pick) or []

    async def _update(self, change: Callable[[list[Mail]], tuple[list[Mail], list[Mail] | None]]
                      ) -> list[Mail] | None:
        if self._lock_path is None:
            self._memory, out = change(self._fresh(self._memory))
            return out
        return await asyncio.to_thread(self._update_locked, change)

    def _update_locked(self, change: Callable[[list[Mail]], tuple[list[Mail], list[Mail] | None]]
                       ) -> list[Mail] | None:
        assert self._lock_path is not None and self._vault.path is not None
        with _locked(self._lock_path):
            try:
                sealed: bytes | None = self._vault.path.read_bytes()
            except FileNotFoundError:
                sealed = None
            try:
                data = self._vault.unseal(sealed)
                box = self._fresh(_decoder.decode(data)) if data is not None else []
            except (VaultDamaged, msgspec.DecodeError):
                data, box = None, []  # expendable: requests are asked again
                sealed = b""
            kept, out = change(box)
            if kept != box or sealed == b"":
                self._vault.write_now(msgspec.msgpack.encode(kept))
            return out

    def _fresh(self, box: list[Mail]) -> list[Mail]:
        oldest = self._clock() - DEFAULT_TIMEOUT
        return [m for m in box if m.at >= oldest]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held for one small read and write
        yield
    finally:
        os.close(fd)
