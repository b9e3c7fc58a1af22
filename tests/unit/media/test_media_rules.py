"""Pure media rules: Range parsing, upload limits, who may read a file, and files of secret
chats encrypted before upload."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.crypto.files import FileDecryptError, decrypt_file, encrypt_file
from pigeon.domain import media as rules
from pigeon.media.ranges import RangeNotSatisfiable, parse_range
from pigeon.protocol.errors import Conflict, InvalidArgument

LIMITS = rules.UploadLimits(max_file_bytes=1000, quota_bytes=5000, max_in_flight=2)


@pytest.mark.parametrize("header,size,span", [
    ("bytes=0-9", 100, (0, 9)), ("bytes=90-", 100, (90, 99)), ("bytes=-10", 100, (90, 99)),
    ("bytes=-500", 100, (0, 99)), ("bytes=50-500", 100, (50, 99)), ("bytes=99-99", 100, (99, 99)),
])
def test_ranges(header, size, span):
    assert parse_range(header, size) == span


@pytest.mark.parametrize("header", ["bytes=10-5", "bytes=100-", "bytes=-0", "bytes=-",
                                    "bytes=1-2,4-5", "lines=0-1", "bytes=a-b", "", "bytes=0x1-"])
def test_nonsense_ranges_are_refused(header):
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, 100)


@given(st.text(max_size=40), st.integers(min_value=0, max_value=2**40))
def test_any_range_header_gives_a_span_inside_the_file_or_a_refusal(header, size):
    try:
        first, last = parse_range(header, size)
    except RangeNotSatisfiable:
        return
    assert 0 <= first <= last < size


def test_upload_limits():
    empty = rules.Usage(0, 0, 0)
    rules.check_new_upload(1000, 64 * 1024, empty, LIMITS)
    with pytest.raises(InvalidArgument, match="at most 1000"):
        rules.check_new_upload(1001, 64 * 1024, empty, LIMITS)
    with pytest.raises(Conflict) as caught:
        rules.check_new_upload(1000, 64 * 1024, rules.Usage(4500, 0, 0), LIMITS)
    assert caught.value.code == "QUOTA_EXCEEDED"
    with pytest.raises(Conflict) as caught:
        rules.check_new_upload(1000, 64 * 1024, rules.Usage(3500, 1, 600), LIMITS)
    assert caught.value.code == "QUOTA_EXCEEDED"  # uploads in flight count too
    with pytest.raises(Conflict) as caught:
        rules.check_new_upload(10, 64 * 1024, rules.Usage(0, 2, 20), LIMITS)
    assert caught.value.code == "TOO_MANY_UPLOADS"


def test_parts_and_names():
    rules.check_part(2, 3 * 65536, 65536)
    for bad in (-1, 3):
        with pytest.raises(InvalidArgument) as caught:
            rules.check_part(bad, 3 * 65536, 65536)
        assert caught.value.code == "PART_OUT_OF_RANGE"
    assert rules.file_name("../../etc/passwd") == "passwd"
    assert rules.file_name("C:\\Users\\me\\cat.jpg") == "cat.jpg"
    with pytest.raises(InvalidArgument):
        rules.file_name("evil\u202egpj.exe")


def test_who_may_read():
    assert rules.may_read(1, 1, [])
    assert not rules.may_read(1, 2, [])
    assert rules.may_read(1, 2, [rules.Sighting(5, False, 0)])
    assert not rules.may_read(1, 2, [rules.Sighting(5, True, 0)])   # deleted for everyone
    assert not rules.may_read(1, 2, [rules.Sighting(5, False, 7)])  # joined after it


def test_a_secret_chat_file_is_ciphertext_with_a_fresh_key(tmp_path):
    marker = b"MARKER-secret-file-" * 1000
    source = tmp_path / "plain"
    source.write_bytes(marker)
    key1 = encrypt_file(source, tmp_path / "c1")
    key2 = encrypt_file(source, tmp_path / "c2")
    assert key1.key != key2.key and key1.sha256 != key2.sha256
    assert b"MARKER" not in (tmp_path / "c1").read_bytes()
    decrypt_file(tmp_path / "c1", tmp_path / "back", key1)
    assert (tmp_path / "back").read_bytes() == marker
    tampered = bytearray((tmp_path / "c1").read_bytes())
    tampered[10] ^= 1
    (tmp_path / "c3").write_bytes(bytes(tampered))
    with pytest.raises(FileDecryptError):
        decrypt_file(tmp_path / "c3", tmp_path / "bad", key1)
    assert not (tmp_path / "bad").exists()
