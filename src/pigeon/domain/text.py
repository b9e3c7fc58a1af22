"""What people write that others are shown: message text, names, titles, device names,
usernames. Each is refused with a typed error before anything is stored.

Names, titles and device names may not hold a control, bidi or other invisible character
(:mod:`pigeon.protocol.characters`; issue 7, finding 16): they are shown to others, and must
neither forge terminal output nor pass for someone else's. Message text may hold them (the
CLI prints it escaped), but not NUL.
"""

from __future__ import annotations

import re

from pigeon.protocol import limits
from pigeon.protocol.characters import describe, escape_hidden, first_hidden
from pigeon.protocol.errors import InvalidArgument

# Telegram's rule, which users know: a letter first, then letters, digits and underscores.
_USERNAME = re.compile(
    rf"[A-Za-z][A-Za-z0-9_]{{{limits.USERNAME_MIN - 1},{limits.USERNAME_MAX - 1}}}")


def validate_text(text: str) -> str:
    """Message text. Length (4,096 code points) and UTF-8 validity are checked by the decoder;
    NUL is legal UTF-8 but breaks C-string consumers downstream (terminals, notification
    services)."""
    if "\x00" in text:
        raise InvalidArgument("text may not contain NUL characters", code="TEXT_INVALID")
    if not text.strip():
        raise InvalidArgument("a message needs some text", code="TEXT_INVALID")
    return text


def visible_line(raw: str, what: str, code: str) -> str:
    """``raw`` with runs of spaces collapsed, or ``code`` if it is blank or holds a control,
    bidi or other invisible character."""
    hidden = first_hidden(raw)
    if hidden is not None:
        raise InvalidArgument(f"{what} may not contain control, bidi or invisible characters "
                              f"(found {describe(hidden)})", code=code)
    line = " ".join(raw.split())
    if not line:
        raise InvalidArgument(f"{what} needs at least one visible character", code=code)
    return line


def validate_title(title: str) -> str:
    return visible_line(title, "a group title", "TITLE_INVALID")


def validate_name(name: str) -> str:
    return visible_line(name, "a name", "NAME_INVALID")


def validate_device(device: str) -> str:
    """A device name as the sessions list shows it; none given: "unnamed device"."""
    if not device.strip():
        return "unnamed device"
    return visible_line(device, "a device name", "DEVICE_INVALID")


def validate_username(raw: str) -> str:
    """A username without its leading ``@``."""
    name = raw.removeprefix("@")
    if not _USERNAME.fullmatch(name):
        raise InvalidArgument(
            f"@{escape_hidden(name)} is not a valid username: "
            f"{limits.USERNAME_MIN}-{limits.USERNAME_MAX} letters (a-z, A-Z), digits and _, "
            "starting with a letter", code="USERNAME_INVALID")
    return name
