"""The seen-devices rule behind the warnings of secret chats (client/trust.py) and the trust
store's vault (a sibling of the device vault, same key)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.client.trust import (
    TrustState,
    TrustWarning,
    UnverifiedDevices,
    changes,
    fingerprint,
    is_verified,
)
from pigeon.crypto.vault import Vault, VaultDamaged
from pigeon.protocol.keys import DeviceKeys, IdentityKeys


def device(user_id: int, device_id: int, ed25519: str, name: str = "phone") -> DeviceKeys:
    return DeviceKeys(user_id=user_id, device_id=device_id, name=name,
                      identity=IdentityKeys(curve25519="c", ed25519=ed25519, signature="s"))


def test_first_sight_is_quiet_then_new_devices_and_changed_keys_warn_once():
    state = TrustState()
    assert changes(state, 5, [device(5, 1, "K1")]) == []  # trust on first use
    assert changes(state, 5, [device(5, 1, "K1")]) == []
    got = changes(state, 5, [device(5, 1, "K1"), device(5, 2, "K2", "laptop")])
    assert got == [TrustWarning("new_device", 5, 2, "laptop", "K2")]
    assert "new device 2 (laptop)" in got[0].message
    got = changes(state, 5, [device(5, 1, "EVIL"), device(5, 2, "K2")])
    assert got == [TrustWarning("key_changed", 5, 1, "phone", "EVIL", "K1")]
    assert "changed since you last saw it" in got[0].message
    assert changes(state, 5, [device(5, 1, "EVIL"), device(5, 2, "K2")]) == []
    assert got[0].as_json()["warning"] == "key_changed"
    assert got[0].as_json()["type"] == "device_warning"


def test_verified_holds_for_one_key_only_and_a_gone_device_is_forgotten():
    state = TrustState()
    changes(state, 5, [device(5, 1, "K1"), device(5, 2, "K2")])
    state.users[5][1].verified = True
    assert is_verified(state, device(5, 1, "K1"))
    assert not is_verified(state, device(5, 2, "K2"))
    assert not is_verified(state, device(5, 1, "OTHER"))  # same id, other key: not verified
    assert not is_verified(state, device(6, 1, "K1"))
    changes(state, 5, [device(5, 1, "NEW")])
    assert not is_verified(state, device(5, 1, "NEW")) and 2 not in state.users[5]


def test_unverified_devices_names_them_and_says_what_to_do():
    error = UnverifiedDevices([device(5, d, "K") for d in range(1, 8)])
    assert error.code == "UNVERIFIED_DEVICES" and len(error.devices) == 7
    assert "device 1 of user:5" in error.message and "2 more" in error.message
    assert "pigeon devices verify user:5" in error.message


def test_fingerprint_in_groups_of_four():
    key = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789+/abcde"
    assert fingerprint(key) == "AbCd EfGh IjKl MnOp QrSt UvWx Yz01 2345 6789 +/ab cde"


async def test_the_trust_store_is_sealed_under_the_device_vault_key(tmp_path):
    written: dict[str, bytes] = {}

    def write(path, data):  # type: ignore[no-untyped-def]
        path.write_bytes(data)
        written[path.name] = data

    vault, _ = await Vault.open(tmp_path / "device-keys.vault", b"pass", write)
    await vault.save(b"account")
    trust = vault.sibling(tmp_path / "trust.vault")
    assert await trust.load() is None
    await trust.save(b"verified devices")
    assert b"verified devices" not in written["trust.vault"]
    again, _ = await Vault.open(tmp_path / "device-keys.vault", b"pass", write)
    assert await again.sibling(tmp_path / "trust.vault").load() == b"verified devices"
    other, _ = await Vault.open(tmp_path / "elsewhere.vault", b"pass", write)
    with pytest.raises(VaultDamaged):  # another salt: another key
        await other.sibling(tmp_path / "trust.vault").load()
    sealed = bytearray(written["trust.vault"])
    sealed[-1] ^= 1
    (tmp_path / "trust.vault").write_bytes(bytes(sealed))
    with pytest.raises(VaultDamaged):
        await again.sibling(tmp_path / "trust.vault").load()


async def test_a_damaged_trust_store_is_a_typed_error_not_a_fresh_start(tmp_path):
    import os
    from types import SimpleNamespace

    from pigeon.client.trust import Trust, TrustStoreDamaged

    vault = Vault(tmp_path / "device-keys.vault", os.urandom(16), os.urandom(64),
                  lambda path, data: path.write_bytes(data))
    client = SimpleNamespace(devices=SimpleNamespace(vault=vault),
                             profile=SimpleNamespace(directory=tmp_path, session_id=1),
                             e2e_guard=contextlib.nullcontext)
    trust = Trust(client)  # type: ignore[arg-type]
    assert not await trust.is_verified(device(5, 2, "K2"))
    # Another process (`devices verify`) stores a verification: this one reads it, and its
    # own next write keeps it instead of overwriting the file with what it had.
    await Trust(client).set_verified(device(5, 2, "K2"))  # type: ignore[arg-type]
    assert await trust.is_verified(device(5, 2, "K2"))
    await trust.set_verified(device(5, 3, "K3"))
    assert await Trust(client).is_verified(device(5, 2, "K2"))  # type: ignore[arg-type]
    (tmp_path / "trust.vault").write_bytes(b"PIGEON-VAULT-1\n" + b"x" * 40)
    with pytest.raises(TrustStoreDamaged) as damaged:
        await Trust(client).is_verified(device(5, 2, "K2"))  # type: ignore[arg-type]
    assert "move it away" in damaged.value.message


_keys = st.sampled_from(["K1", "K2", "K3"])
_devices = st.dictionaries(st.integers(1, 6), _keys, max_size=5)


@given(st.lists(_devices, min_size=1, max_size=6))
def test_warnings_name_exactly_the_changes_and_come_once(sightings):
    """First sight (the first with any device) is quiet; afterwards, even if every device
    went away in between (a server hiding them), each new device and changed key warns."""
    state = TrustState()
    before: dict[int, str] | None = None
    for now in sightings:
        got = changes(state, 5, [device(5, d, k) for d, k in now.items()])
        want = set()
        if before is not None:
            want = {("new_device", d) if d not in before else ("key_changed", d)
                    for d, k in now.items() if before.get(d) != k}
        assert {(w.kind, w.device_id) for w in got} == want
        assert changes(state, 5, [device(5, d, k) for d, k in now.items()]) == []
        before = now if (before is not None or now) else None
