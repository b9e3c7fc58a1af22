"""Characters that do not show as themselves: one rule for the server, which refuses them in
names, titles and device names, and for the CLI, which prints them escaped.

Issue 7, finding 16: a stranger's message or name carrying ``\\x1b[2K\\r`` erased the line a
terminal was showing and forged one that seemed to come from someone else; a bidi override
(U+202E) reverses what follows it; zero-width and other format characters make two names that
look the same differ. Hidden here means Unicode categories:

- ``Cc``: C0 controls (NUL, ESC, CR, LF, TAB, ...), DEL and the C1 controls (U+0080-U+009F;
  U+009B is a one-byte CSI to some terminals);
- ``Cf``: format characters: bidi embeddings, overrides, isolates and marks (U+202A-U+202E,
  U+2066-U+2069, U+200E, U+200F, U+061C), zero-width space and word joiner, soft hyphen, BOM,
  tag characters;
- ``Zl``, ``Zp``: the line and paragraph separators U+2028 and U+2029;
- ``Cs``: lone surrogates (never valid UTF-8; a terminal cannot even be sent them).

The zero-width non-joiner and joiner (U+200C, U+200D) are format characters too, but Persian and
Indic writing and emoji sequences (👩‍💻) need them, and they move nothing: they stay allowed.
"""

from __future__ import annotations

import unicodedata

HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
JOINERS = frozenset("\u200c\u200d")


def is_hidden(ch: str) -> bool:
    """True for a character that moves the cursor, reorders text or does not show."""
    return unicodedata.category(ch) in HIDDEN_CATEGORIES and ch not in JOINERS


def first_hidden(text: str) -> str | None:
    """The first hidden character of ``text``, or None."""
    if text.isprintable():  # fast path: every hidden character is also unprintable
        return None
    return next((ch for ch in text if is_hidden(ch)), None)


def escape_hidden(text: str) -> str:
    """``text`` as one line that shows what it holds: each hidden character as ``\\x1b``,
    ``\\r``, ``\\n`` or ``<U+202E>``, everything else as it is."""
    if first_hidden(text) is None:
        return text
    return "".join(_escape(ch) if is_hidden(ch) else ch for ch in text)


def _escape(ch: str) -> str:
    name = describe(ch)
    return name if name.startswith("\\") else f"<{name}>"


def describe(ch: str) -> str:
    """How a hidden character is named to people: ``\\x1b``, ``\\n`` or ``U+202E``."""
    short = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch)
    if short is not None:
        return short
    if ord(ch) <= 0xFF:
        return f"\\x{ord(ch):02x}"
    return f"U+{ord(ch):04X}"
