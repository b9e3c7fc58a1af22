"""Files of secret chats, encrypted on the device before upload (issue 10, Media 5).

Each file gets a fresh 256-bit key and 96-bit nonce; AES-256-GCM (``cryptography``) runs over
it in chunks, so a file of any size streams through without being held in memory; the
16-byte tag is appended. The server stores and serves only ciphertext. What the receiver needs
(key, nonce, the ciphertext's SHA-256 to check the download against) travels inside the
end-to-end encrypted message, as :class:`FileKey`.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

CHUNK = 1 << 20
TAG_BYTES = 16


class FileKey(msgspec.Struct, frozen=True, kw_only=True):
    """What decrypts one file: inside the E2E message, never sent to the server in clear."""

    key: str      # base64, 32 bytes
    nonce: str    # base64, 12 bytes
    sha256: str   # of the ciphertext (what the server stores), hex
    size: int     # of the plaintext


class FileDecryptError(Exception):
    """The ciphertext was altered, or this is not its key."""


def encrypt_file(source: Path, target: Path) -> FileKey:
    """Encrypt ``source`` into ``target`` (blocking: run it in a thread)."""
    key, nonce = os.urandom(32), os.urandom(12)
    encryptor = Cipher(algorithms.AES(key), modes.GCM(nonce)).encryptor()
    digest, size = hashlib.sha256(), 0
    with source.open("rb") as src, target.open("wb") as dst:
        while chunk := src.read(CHUNK):
            size += len(chunk)
            out = encryptor.update(chunk)
            digest.update(out)
            dst.write(out)
        tail = encryptor.finalize() + encryptor.tag
        digest.update(tail)
        dst.write(tail)
    return FileKey(key=base64.b64encode(key).decode(), nonce=base64.b64encode(nonce).decode(),
                   sha256=digest.hexdigest(), size=size)


def decrypt_file(source: Path, target: Path, file_key: FileKey) -> None:
    """Decrypt what :func:`encrypt_file` made; FileDecryptError (and no ``target``) if it was
    changed. Blocking: run it in a thread."""
    total = source.stat().st_size
    if total < TAG_BYTES:
        raise FileDecryptError("too short to be an encrypted file")
    with source.open("rb") as src:
        src.seek(total - TAG_BYTES)
        tag = src.read(TAG_BYTES)
        src.seek(0)
        decryptor = Cipher(algorithms.AES(base64.b64decode(file_key.key)),
                           modes.GCM(base64.b64decode(file_key.nonce), tag)).decryptor()
        left = total - TAG_BYTES
        partial = target.with_name(target.name + ".decrypting")
        try:
            with partial.open("wb") as dst:
                while left > 0:
                    chunk = src.read(min(CHUNK, left))
                    left -= len(chunk)
                    dst.write(decryptor.update(chunk))
                decryptor.finalize()
        except InvalidTag:
            partial.unlink(missing_ok=True)
            raise FileDecryptError("the file was altered, or this is not its key") from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    partial.replace(target)
