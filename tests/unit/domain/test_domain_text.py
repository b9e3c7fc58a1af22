"""Message text (pigeon.domain.text); names, titles and device names are in test_names.py."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.domain.text import validate_text
from pigeon.protocol.errors import InvalidArgument


@given(st.text(max_size=200))
def test_text_is_kept_as_written_unless_blank_or_holding_nul(text: str):
    if "\x00" in text or not text.strip():
        with pytest.raises(InvalidArgument) as info:
            validate_text(text)
        assert info.value.code == "TEXT_INVALID"
    else:
        assert validate_text(text) is text
