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

from pigeon.protocol.errors import InvalidArgument, Unauthorized

#: how a sealed vault reaches the disk: atomically and private to its owner (the SDK's
#: profile writer); tests and in-memory profiles pass none
Writer = Callable[[Path, bytes], None]

MAGIC = b"PIGEON-VAULT-1\n"
SALT_BYTES, NONCE_BYTES = 16, 12
# argon2id's cost: about a quarter of a second on a laptop core, paid once per opening.
TIME_COST, MEMORY_KIB, PARALLELISM = 2, 64 * 1024, 1


class WrongPassphrase(Unauthorized):
    """The passphrase does not open this device's secrets (or the file was altered)."""

    code = "WRONG_PASSPHRASE"


class VaultDamaged(InvalidArgument):
    """The file is not a vault this code can read."""

    code = "VAULT_DAMAGED"


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

    def sibling(self, path: Path | None) -> Vault:
        """Another file sealed under this vault's key (by :meth:`seal` or record by record,
        :meth:`seal_record`): one argon2 run opens a device's keys and its secret history."""
        return Vault(path, self._salt, self._key, self._write)

    async def read(self) -> bytes | None:
        """What this vault's file holds now (None: no file), with the key already derived:
        another process may have saved it since. WrongPassphrase / VaultDamaged."""
        sealed = await asyncio.to_thread(_read, self.path)
        if sealed is None:
            return None
        head = len(MAGIC) + SALT_BYTES
        if not sealed.startswith(MAGIC) or len(sealed) < head + NONCE_BYTES:
            raise VaultDamaged(f"{self.path} is not a Pigeon vault")
        if sealed[len(MAGIC):head] != self._salt:
            raise WrongPassphrase(f"{self.path} was sealed under another passphrase")
        try:
            return self._aead.decrypt(sealed[head:head + NONCE_BYTES],
                                      sealed[head + NONCE_BYTES:], sealed[:head])
        except InvalidTag:
            raise WrongPassphrase(f"{self.path} does not open with this passphrase") from None

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

    @property
    def salt(self) -> bytes:
        return self._salt

    def seal_record(self, data: bytes, context: bytes) -> bytes:
        """``nonce | AES-GCM(data)`` under this vault's key, ``context`` authenticated: one
        record of a log that another module keeps (the secret-chat store)."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data, context)

    def open_record(self, sealed: bytes, context: bytes) -> bytes:
        """A record :meth:`seal_record` made; WrongPassphrase if it was not (or altered)."""
        try:
            if len(sealed) < NONCE_BYTES:  # cut short: AESGCM would refuse the nonce itself
                raise InvalidTag
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context)
        except InvalidTag:
            raise WrongPassphrase("a record does not open with this passphrase (or it was "
                                  "altered)") from None

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
            await asyncio.to_thread(self._seal_and_write, self.path, self._write, data)

    def _seal_and_write(self, path: Path, write: Writer, data: bytes) -> None:
        write(path, self.seal(data))


def _read(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def signature(path: Path | None) -> tuple[int, int, int] | None:
    """What tells a file's versions apart (an atomic save is a new inode; an append, a new
    size): to notice that another process wrote it."""
    if path is None:
        return None
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)
