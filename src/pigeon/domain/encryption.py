"""End-to-end encrypted groups (issue 9, deliverable 4): what the server takes in them.

A group created ``secret`` holds only ciphertext the server cannot read: every message
carries an opaque ``ciphertext`` (Megolm, made and read by the members' devices) and no
text. So the server refuses, with ENCRYPTION_REQUIRED, anything that would put plaintext
in such a group or take its ciphertext elsewhere: a text message, an edit (an encrypted
edit would be a new message), a forward into it or out of it. Outside those groups a
ciphertext means a client confused about the chat: CHAT_NOT_ENCRYPTED.

A secret group is an ordinary group, not a very large one: its senders share a key with
every member device, which does not scale to a supergroup's 200,000 members.
"""

from __future__ import annotations

from pigeon.protocol.errors import Forbidden, InvalidArgument

from .text import validate_text


def check_new_group(secret: bool, large: bool) -> None:
    if secret and large:
        raise InvalidArgument("a very large group cannot be end-to-end encrypted: its members "
                              "are too many to share keys with", code="INVALID_ARGUMENT")


def check_text(text: str, ciphertext: bytes | None) -> str:
    """A new message's text as the server checks it before the store (which knows the chat):
    that of a plain message, or nothing beside a ciphertext."""
    return text if ciphertext is not None else validate_text(text)


def check_body(secret: bool, text: str, ciphertext: bytes | None,
               attached: bool = False) -> None:
    """A new message in a chat that is ``secret`` or not: ciphertext and no text in a secret
    one, no ciphertext elsewhere. ``attached``: it carries a sticker or a file, which the
    server holds in the clear, so never in a secret group."""
    if secret:
        if attached:
            raise encryption_required("stickers and files are not end-to-end encrypted: send "
                                      "text")
        if ciphertext is None or text:
            raise encryption_required("send it encrypted (ciphertext, no text)")
    elif ciphertext is not None:
        raise InvalidArgument("this chat is not end-to-end encrypted: send text, not "
                              "ciphertext", code="CHAT_NOT_ENCRYPTED")


def check_plain_edit(secret: bool) -> None:
    if secret:
        raise encryption_required("messages cannot be edited in plaintext")


def check_forward(from_secret: bool, to_secret: bool) -> None:
    if from_secret or to_secret:
        raise encryption_required("messages cannot be forwarded into or out of an end-to-end "
                                  "encrypted group")


def encryption_required(what: str) -> Forbidden:
    return Forbidden(f"this group is end-to-end encrypted: {what}", code="ENCRYPTION_REQUIRED")
