"""Text with everything a terminal or a reader can be fooled by, for property tests of the
CLI's rendering and the server's validation of names (issue 7, finding 16)."""

import unicodedata

from hypothesis import strategies as st

# What a terminal or a reader can be fooled by, named by the classes the issue names: C0 and C1
# controls and DEL, bidi embeddings/overrides/isolates/marks, zero-width and other format
# characters, line and paragraph separators (and lone surrogates, which cannot even be printed).
BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def forbidden(ch: str) -> bool:
    code = ord(ch)
    return (code < 0x20 or 0x7F <= code <= 0x9F or ch in BIDI
            or unicodedata.category(ch) in ("Cf", "Zl", "Zp", "Cs") and ch not in "\u200c\u200d")


NASTY = "\x00\x07\x08\x1b\r\n\t\x0b\x0c\x7f\x85\x9b\x9d\u00ad\u061c\u200b\u200d\u200e\u202e" \
        "\u2066\u2069\u2028\u2029\ufeff\U000e0001\U000e0041\ud800\udfff"
any_char = st.one_of(st.characters(exclude_categories=()), st.sampled_from(NASTY))
any_text = st.text(any_char, max_size=200)
