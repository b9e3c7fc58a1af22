"""The region table and homing (pigeon/domain/regions.py): a pure function of the number,
the same on every node; ids say their region; bad tables are refused with a reason."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.domain import regions as r
from pigeon.protocol import regions as w
from pigeon.protocol.errors import InvalidArgument

TABLE = {"regions": [
    {"name": "eu", "index": 0, "endpoints": ["wss://eu.example:8700/v1/ws"],
     "calling_codes": [33, 44, 49], "default": True},
    {"name": "us", "index": 1, "endpoints": ["wss://us.example:8700/v1/ws"],
     "calling_codes": [1]},
    {"name": "ap", "index": 2, "calling_codes": [65, 852, 81]},
]}


def table() -> r.RegionTable:
    return r.parse_table(TABLE)


def test_numbers_are_homed_by_calling_code_else_in_the_default() -> None:
    t = table()
    assert r.home_of(t, "+14155550100") == "us"
    assert r.home_of(t, "+4915112345678") == "eu"
    assert r.home_of(t, "+85291234567") == "ap"
    assert r.home_of(t, "+8613912345678") == "eu"  # 86 listed nowhere: the default
    with pytest.raises(InvalidArgument):
        r.home_of(t, "4915112345678")


@given(st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True))
def test_homing_is_deterministic_and_agrees_with_the_codes(phone: str) -> None:
    t = table()
    home = r.home_of(t, phone)
    assert home == r.home_of(r.parse_table(TABLE), phone)
    listed = [c for c in t.by_code if phone[1:].startswith(str(c))]
    assert len(listed) <= 1  # prefix-free: at most one code matches
    assert home == (t.by_code[listed[0]] if listed else t.default)


@given(st.integers(min_value=0, max_value=2), st.integers(min_value=0,
                                                         max_value=(1 << r.ID_SHIFT) - 1))
def test_an_id_says_its_region(index: int, offset: int) -> None:
    t = table()
    region = t.regions[index]
    user_id = region.first_id + offset if index == 0 else (index << r.ID_SHIFT) + offset
    if user_id >= (index + 1) << r.ID_SHIFT:
        return
    assert r.region_of_id(t, user_id) == region.name
    assert [x.name for x in t.regions if r.homed_in(t, user_id, x.name)] == [region.name]
    assert user_id <= 2**62  # within the protocol's id bound


def test_an_id_of_no_region_is_homed_nowhere() -> None:
    t = table()
    stray = (max(x.number for x in t.regions) + 1) << r.ID_SHIFT
    assert not any(r.homed_in(t, stray, x.name) for x in t.regions)
    assert not r.homed_in(t, 1, "nowhere")


@pytest.mark.parametrize("change, reason", [
    (lambda t: t["regions"].append(dict(t["regions"][0], name="x", index=5)), "two regions"),
    (lambda t: t["regions"][1].update(calling_codes=[1, 44]), "two regions"),
    (lambda t: t["regions"][1].update(calling_codes=[4]), "prefix"),
    (lambda t: t["regions"][1].update(index=0), "same index"),
    (lambda t: t["regions"][1].update(name="eu"), "same name"),
    (lambda t: t["regions"][1].update(default=True), "exactly one"),
    (lambda t: t["regions"][1].update(name="Bad Name"), "name"),
    (lambda t: t["regions"][1].update(index=-1), "index"),
    (lambda t: t["regions"][1].update(index=True), "index"),
    (lambda t: t["regions"][1].update(endpoints=["ftp://x"]), "endpoints"),
    (lambda t: t["regions"][1].update(calling_codes=[1000]), "calling_codes"),
    (lambda t: t["regions"][1].update(colour="red"), "unknown"),
    (lambda t: t.update(extra=1), "nothing else"),
    (lambda t: t.update(regions=[]), "1 to"),
])
def test_bad_tables_are_refused_with_a_reason(change, reason: str) -> None:  # type: ignore[no-untyped-def]
    broken = json.loads(json.dumps(TABLE))
    change(broken)
    with pytest.raises(r.RegionTableError, match=reason):
        r.parse_table(broken)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.sampled_from(["regions", "name", "index", "endpoints",
                                                       "calling_codes", "default", "x"]),
                                      inner, max_size=5), max_leaves=30)


@given(JSON)
def test_any_json_is_a_table_or_a_region_table_error(raw: object) -> None:
    try:
        r.parse_table(raw)
    except r.RegionTableError:
        pass


@given(st.binary(max_size=300))
def test_any_bytes_decode_as_a_cross_message_or_a_typed_error(data: bytes) -> None:
    try:
        decoded = w.decode_cross(data)
    except InvalidArgument:
        return
    assert isinstance(decoded, (w.CrossMessage, w.UnknownCross))


def test_a_newer_kind_of_cross_message_is_skipped_not_fatal() -> None:
    assert isinstance(w.decode_cross(msgspec.msgpack.encode({"type": "poll", "id": 1})),
                      w.UnknownCross)
    message = w.CrossMessage(origin="eu", sender=w.RemoteUser(id=5, name="A"), recipient_id=7,
                             random_id=-3, text="hi", date=1.0)
    assert w.decode_cross(w.encode(message)) == message


@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=1, max_value=10**6))
def test_cross_order_applies_only_the_next_sequence(last: int, seq: int) -> None:
    verdict = r.cross_order(last, seq)
    assert verdict == ("old" if seq <= last else "apply" if seq == last + 1 else "early")
