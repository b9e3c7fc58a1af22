"""Regions (issue 12, deliverable 6): which region an account lives in. (What travels between
regions is pigeon/protocol/regions.py.)

Every node of every region is given the same region table (``--regions FILE``, JSON, read by
server/settings.py)::

    {"regions": [
      {"name": "eu", "index": 0, "endpoints": ["wss://eu.example:8700/v1/ws"],
       "calling_codes": [33, 44, 49], "default": true},
      {"name": "us", "index": 1, "endpoints": ["wss://us.example:8700/v1/ws"],
       "calling_codes": [1]}]}

Homing is a pure function of the phone number (its country calling code), so no global
directory is needed and every node of every region agrees on it. A user id says its region
too: each region allocates ids from its own range, ``index << ID_SHIFT`` upwards, so ids are
unique across regions without asking anyone.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from pigeon.protocol.errors import InvalidArgument

#: a region's user ids are index << ID_SHIFT .. (index + 1) << ID_SHIFT - 1 (region 0 from 1)
ID_SHIFT = 40
#: at most this many regions; the largest id stays far below the protocol's bound (2**62)
MAX_REGIONS = 1024
MAX_ENDPOINTS = 16
#: country calling codes are 1 to 3 digits and prefix-free (ITU-T E.164), so the first
#: matching prefix of a number is its code
MAX_CODE_DIGITS = 3

_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
_ENDPOINT = re.compile(r"(https?|wss?)://[^\s,]{1,240}")


class RegionTableError(ValueError):
    """The region table cannot be used; the message says where and why."""


class Region(NamedTuple):
    name: str
    number: int  # "index" in the table: its ids are number << ID_SHIFT onwards
    endpoints: tuple[str, ...]
    calling_codes: frozenset[int]
    default: bool = False

    @property
    def first_id(self) -> int:
        return max(1, self.number << ID_SHIFT)


class RegionTable(NamedTuple):
    regions: tuple[Region, ...]
    by_code: dict[int, str]
    default: str

    def get(self, name: str) -> Region:
        for region in self.regions:
            if region.name == name:
                return region
        raise RegionTableError(f"no region named {name!r} in the region table")

    def names(self) -> list[str]:
        return [r.name for r in self.regions]


def home_of(table: RegionTable, phone: str) -> str:
    """The region a number's account lives in: the region listing its country calling code,
    else the table's default. ``phone`` is E.164 (``+`` and digits; checked before)."""
    if not phone.startswith("+") or not phone[1:].isdigit():
        raise InvalidArgument("the number must be in international form", code="PHONE_INVALID")
    digits = phone[1:]
    for length in range(1, MAX_CODE_DIGITS + 1):
        found = table.by_code.get(int(digits[:length])) if len(digits) >= length else None
        if found is not None:
            return found
    return table.default


def region_of_id(table: RegionTable, user_id: int) -> str:
    """The region that allocated ``user_id`` (where that account lives)."""
    index = user_id >> ID_SHIFT
    for region in table.regions:
        if region.number == index:
            return region.name
    raise InvalidArgument(f"user id {user_id} belongs to no region", code="INVALID_ARGUMENT")


def homed_in(table: RegionTable, user_id: int, region: str) -> bool:
    """Whether ``user_id`` is an account of ``region`` (False for an id of no region: what
    another region names must say where it lives)."""
    index = user_id >> ID_SHIFT
    return any(r.number == index and r.name == region for r in table.regions)


def cross_order(last_applied: int, seq: int) -> str:
    """Where a message from another region's stream stands, by its stream sequence: "apply"
    (the next one), "old" (applied, or skipped, before: a redelivery) or "early" (one before
    it is still on its way, redelivered to this node or another: wait for it)."""
    if seq <= last_applied:
        return "old"
    return "apply" if seq == last_applied + 1 else "early"


def parse_table(raw: Any) -> RegionTable:
    """The region table from its parsed JSON; RegionTableError says what is wrong."""
    if not isinstance(raw, dict) or set(raw) != {"regions"} or not isinstance(raw["regions"], list):
        raise RegionTableError('the region table is {"regions": [...]} and nothing else')
    items = raw["regions"]
    if not 1 <= len(items) <= MAX_REGIONS:
        raise RegionTableError(f"a region table lists 1 to {MAX_REGIONS} regions")
    regions = tuple(_region(item, n) for n, item in enumerate(items))
    by_code: dict[int, str] = {}
    for region in regions:
        for code in region.calling_codes:
            if code in by_code:
                raise RegionTableError(f"calling code {code} is homed in two regions")
            by_code[code] = region.name
    if not _prefix_free(by_code):
        raise RegionTableError("a calling code is a prefix of another (they are prefix-free)")
    for attribute in ("name", "number"):
        values = [getattr(r, attribute) for r in regions]
        if len(set(values)) != len(values):
            raise RegionTableError(
                f"two regions have the same {'index' if attribute == 'number' else attribute}")
    defaults = [r.name for r in regions if r.default]
    if len(defaults) != 1:
        raise RegionTableError("exactly one region is the default (for unlisted codes)")
    return RegionTable(regions=regions, by_code=by_code, default=defaults[0])


def _region(item: Any, n: int) -> Region:
    where = f"region #{n}"
    if not isinstance(item, dict):
        raise RegionTableError(f"{where} is not an object")
    unknown = set(item) - {"name", "index", "endpoints", "calling_codes", "default"}
    if unknown:
        raise RegionTableError(f"{where}: unknown keys {sorted(unknown)}")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise RegionTableError(f"{where}: name is 1-32 of a-z, 0-9 and -, starting alphanumeric")
    index = item.get("index")
    if type(index) is not int or not 0 <= index < MAX_REGIONS:
        raise RegionTableError(f"{where}: index is an integer 0 to {MAX_REGIONS - 1}")
    endpoints = item.get("endpoints", [])
    if (not isinstance(endpoints, list) or len(endpoints) > MAX_ENDPOINTS
            or not all(isinstance(e, str) and _ENDPOINT.fullmatch(e) for e in endpoints)):
        raise RegionTableError(f"{where}: endpoints is a list of at most {MAX_ENDPOINTS} "
                               "ws(s):// or http(s):// URLs")
    codes = item.get("calling_codes", [])
    if (not isinstance(codes, list) or len(codes) > 1000
            or not all(type(c) is int and 1 <= c <= 999 for c in codes)):
        raise RegionTableError(f"{where}: calling_codes is a list of integers 1 to 999")
    default = item.get("default", False)
    if not isinstance(default, bool):
        raise RegionTableError(f"{where}: default is true or false")
    return Region(name=name, number=index, endpoints=tuple(endpoints),
                  calling_codes=frozenset(codes), default=default)


def _prefix_free(by_code: dict[int, str]) -> bool:
    texts = {str(code) for code in by_code}
    return not any(t[:k] in texts for t in texts for k in range(1, len(t)))
