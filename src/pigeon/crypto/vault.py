"""A device's secrets at rest: one file, encrypted under a key derived from a passphrase.

argon2id (argon2-cffi) turns the passphrase and the file's random salt into 64 bytes: the
first 32 key AES-256-GCM (``cryptography``) over the whole file, the other 32 are the key
vodozemac encrypts its own pickles with. Nothing of the device's keys or sessions is ever
written in the clear; a wrong passphrase fails GCM's authentication and says so.

File: ``MAGIC | salt (16) | nonce (12) | AES-GCM(ciphertext + tag)``, the magic and salt
authenticated as associated data. A fresh nonce on every save.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from pathlib import Path

import argon2.low_level
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: how a sealed vault reaches the disk: atomically and private to its owner (the SDK's
#: profile writer); tests and in-memory profiles pass none
Writer = Callable[[Path, bytes], None]

MAGIC = b"PIGEON-VAULT-1\n"
SALT_BYTES, NONCE_BYTES = 16, 12
# argon2id's cost: about a quarter of a second on a laptop core, paid once per opening.
TIME_COST, MEMORY_KIB, PARALLELISM = 2, 64 * 1024, 1


class WrongPassphrase(Exception):
    """The passphrase does not open this device's secrets (or the file was altered)."""


class VaultDamaged(Exception):
    """The file is not a vault this code can read."""


def _derive(passphrase: bytes, salt: bytes) -> bytes:
    return argon2.low_level.hash_secret_raw(
        passphrase, salt, time_cost=TIME_COST, memory_cost=MEMORY_KIB,
        parallelism=PARALLELISM, hash_len=64, type=argon2.low_level.Type.ID)


class Vault:
    """Opened with :meth:`open`; ``pickle_key`` is for vodozemac's pickles."""

    def __init__(self, path: Path | None, salt: bytes, key: bytes,
                 write: Writer | None = None) -> None:
        self.path = path
        self._write = write
        self._salt = salt
        self._key = key
        self._aead = AESGCM(key[:32])
        self.pickle_key = key[32:]

    @classmethod
    async def open(cls, path: Path | None, passphrase: bytes,
                   write: Writer | None = None) -> tuple[Vault, bytes | None]:
        """The vault at ``path`` (None: in memory only) and what it holds (None: new).
        WrongPassphrase if ``passphrase`` does not open it. Key derivation runs in a thread."""
        sealed = await asyncio.to_thread(_read, path)
        if sealed is None:
            salt = secrets.token_bytes(SALT_BYTES)
            key = await asyncio.to_thread(_derive, passphrase, salt)
            return cls(path, salt, key, write), None
        if not sealed.startswith(MAGIC) or len(sealed) < len(MAGIC) + SALT_BYTES + NONCE_BYTES:
            raise VaultDamaged(f"{path} is not a Pigeon vault")
        head = len(MAGIC) + SALT_BYTES
        salt, nonce = sealed[len(MAGIC):head], sealed[head:head + NONCE_BYTES]
        vault = cls(path, salt, await asyncio.to_thread(_derive, passphrase, salt), write)
        try:
            return vault, vault._aead.decrypt(nonce, sealed[head + NONCE_BYTES:], sealed[:head])
        except InvalidTag:
            raise WrongPassphrase("wrong passphrase for this device's keys") from None

    def sibling(self, path: Path | None) -> Vault:
        """A vault for another file of this device (the trust store), sealed under the same
        key: opening it costs no second key derivation, and the passphrase opens both."""
        return Vault(path, self._salt, self._key, self._write)

    async def load(self) -> bytes | None:
        """What this vault's file holds (None: no file yet). VaultDamaged if it was sealed
        under another key (the device's vault was made anew) or altered."""
        return self.unseal(await asyncio.to_thread(_read, self.path))

    def unseal(self, sealed: bytes | None) -> bytes | None:
        """What :meth:`seal` made of it (None stays None); VaultDamaged as :meth:`load`."""
        if sealed is None:
            return None
        head = len(MAGIC) + SALT_BYTES
        if sealed[:head] != MAGIC + self._salt or len(sealed) < head + NONCE_BYTES:
            raise VaultDamaged(f"{self.path} was not sealed by this device's vault")
        try:
            return self._aead.decrypt(sealed[head:head + NONCE_BYTES],
                                      sealed[head + NONCE_BYTES:], sealed[:head])
        except InvalidTag:
            raise VaultDamaged(f"{self.path} was altered") from None

    def write_now(self, data: bytes) -> None:
        """:meth:`save`, blocking: for a caller already in a worker thread (under a lock)."""
        if self.path is not None and self._write is not None:
            self._write(self.path, self.seal(data))

    def seal(self, data: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        head = MAGIC + self._salt
        return head + nonce + self._aead.encrypt(nonce, data, head)

    async def save(self, data: bytes) -> None:
        if self.path is not None and self._write is not None:
            await asyncio.to_thread(self._write, self.path, self.seal(data))


def _read(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
