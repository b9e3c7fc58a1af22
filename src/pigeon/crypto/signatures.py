"""Checking the Ed25519 signatures of published device keys, on the server (what it stores)
and in the SDK (what it encrypts to), with vodozemac."""

from __future__ import annotations

import vodozemac

from pigeon.protocol.errors import InvalidArgument


def verify(ed25519: str, signed: list[tuple[bytes, str]]) -> None:
    """KEY_SIGNATURE_INVALID unless each (message, signature) verifies with ``ed25519``."""
    try:
        key = vodozemac.Ed25519PublicKey.from_base64(ed25519)
        for message, signature in signed:
            key.verify_signature(message, vodozemac.Ed25519Signature.from_base64(signature))
    except (vodozemac.KeyException, vodozemac.SignatureException) as exc:
        raise InvalidArgument(f"a key or signature does not verify: {exc}",
                              code="KEY_SIGNATURE_INVALID") from None


def sign(account: vodozemac.Account, message: bytes) -> str:
    return account.sign(message).to_base64()
