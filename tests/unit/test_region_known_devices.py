"""What a node remembers of other regions' devices (server/region_keys.KnownDevices): per
asker, the last answer for each person, recalled only whole, and bounded."""

from __future__ import annotations

import pytest

from pigeon.protocol.keys import DeviceKeys, IdentityKeys
from pigeon.server import region_keys
from pigeon.server.region_keys import KnownDevices

IDENTITY = IdentityKeys(curve25519="A" * 43, ed25519="A" * 43, signature="A" * 86)


def device(user_id: int, device_id: int) -> DeviceKeys:
    return DeviceKeys(user_id=user_id, device_id=device_id, name="d", identity=IDENTITY)


def test_recalled_per_asker_and_only_whole() -> None:
    known = KnownDevices()
    known.keep(1, [10, 11], [device(10, 100), device(10, 101)])
    assert known.recall(1, [10]) == [device(10, 100), device(10, 101)]
    assert known.recall(1, [11]) == []  # said: no devices
    assert known.recall(1, [10, 12]) is None  # of 12 nothing was said
    assert known.recall(2, [10]) is None  # another asker: asked for itself
    known.keep(1, [10], [device(10, 102)])  # the newest answer wins
    assert known.recall(1, [10]) == [device(10, 102)]


def test_bounded_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(region_keys, "KNOWN_DEVICES", 3)
    known = KnownDevices()
    for user_id in (1, 2, 3):
        known.keep(9, [user_id], [device(user_id, user_id)])
    known.keep(9, [1], [device(1, 1)])  # refreshed: now the newest
    known.keep(9, [4], [])
    assert known.recall(9, [2]) is None
    assert known.recall(9, [1, 3, 4]) == [device(1, 1), device(3, 3)]
