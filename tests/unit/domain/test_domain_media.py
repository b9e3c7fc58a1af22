"""Media rules: who may read a file (readers named by the uploader: a secret chat's peer),
when a blob may go (no file and no sticker uses it), and file names."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pigeon.domain import media as rules


def test_a_named_reader_reads_without_a_message() -> None:
    assert rules.may_read(1, 2, [], named=True)
    assert not rules.may_read(1, 2, [])
    assert rules.readers(1, [3, 1, 2, 3]) == [2, 3]  # once each, never the uploader


def test_a_blob_goes_only_when_nothing_uses_it() -> None:
    assert rules.blob_unused(0, 0)
    assert not rules.blob_unused(0, 1)  # a sticker of the same bytes
    assert not rules.blob_unused(1, 0)


@given(st.text(max_size=300))
def test_a_file_name_is_one_path_component(raw: str) -> None:
    try:
        name = rules.file_name(raw)
    except rules.InvalidArgument:
        return
    assert "/" not in name and "\\" not in name and name == name.strip()
