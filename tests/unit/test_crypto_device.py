"""The device's Olm machine and its vault, without a server: whatever bytes arrive, a device
either decrypts what was meant for it or says it cannot, never crashes; its secrets are
sealed under the passphrase."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pigeon.crypto import vault as vault_module
from pigeon.crypto.olm import CannotDecrypt, OlmDevice
from pigeon.crypto.vault import Vault, VaultDamaged, WrongPassphrase
from pigeon.protocol.errors import InvalidArgument
from pigeon.protocol.keys import ClaimedKey


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vault_module, "MEMORY_KIB", 8 * 1024)


def pair() -> tuple[OlmDevice, OlmDevice]:
    alice, bob = OlmDevice.new(1, 10), OlmDevice.new(2, 20)
    (key, *_) = bob.new_one_time_keys(2)
    bob.mark_published()
    alice.start_session(ClaimedKey(user_id=2, device_id=20, identity=bob.identity(), key=key))
    return alice, bob


def test_a_session_both_ways_refuses_replays_and_flipped_bits() -> None:
    alice, bob = pair()
    kind, data = alice.encrypt(bob.identity(), b"marker")
    assert kind == 0 and bob.decrypt(alice.identity(), kind, data) == b"marker"
    with pytest.raises(CannotDecrypt):
        bob.decrypt(alice.identity(), kind, data)  # replayed
    kind, data = bob.encrypt(alice.identity(), b"reply")
    assert alice.decrypt(bob.identity(), kind, data) == b"reply"
    kind, data = alice.encrypt(bob.identity(), b"again")
    assert kind == 1
    flipped = bytes([data[0], data[1] ^ 1, *data[2:]])
    with pytest.raises(CannotDecrypt):
        bob.decrypt(alice.identity(), kind, flipped)
    assert bob.decrypt(alice.identity(), kind, data) == b"again"  # the real one still reads


def test_a_device_knows_the_ciphertexts_it_read_lately_across_a_reload() -> None:
    from pigeon.crypto.olm import SEEN_CIPHERTEXTS

    alice, bob = pair()
    kind, data = alice.encrypt(bob.identity(), b"once")
    assert not bob.already_read(data)
    bob.decrypt(alice.identity(), kind, data)
    key = b"k" * 32
    bob = OlmDevice.load(bob.dump(key), key)
    assert bob.already_read(data) and not bob.already_read(data + b"x")
    for i in range(SEEN_CIPHERTEXTS):  # only the last ones are kept
        kind, later = alice.encrypt(bob.identity(), b"%d" % i)
        bob.decrypt(alice.identity(), kind, later)
    assert not bob.already_read(data) and bob.already_read(later)


def test_a_copy_meant_for_another_device_or_from_another_sender_is_refused() -> None:
    alice, bob = pair()
    carol = OlmDevice.new(3, 30)
    kind, data = alice.encrypt(bob.identity(), b"x")
    with pytest.raises(CannotDecrypt):  # claimed to come from someone else
        bob.decrypt(carol.identity(), kind, data)


def test_keys_signed_by_another_device_do_not_start_a_session() -> None:
    alice, bob, mallory = OlmDevice.new(1, 10), OlmDevice.new(2, 20), OlmDevice.new(9, 90)
    (forged,) = mallory.new_one_time_keys(1)
    with pytest.raises(InvalidArgument):
        alice.start_session(ClaimedKey(user_id=2, device_id=20, identity=bob.identity(),
                                       key=forged))
    with pytest.raises(InvalidArgument):  # an identity claimed for another device id
        alice.start_session(ClaimedKey(user_id=2, device_id=21, identity=bob.identity(),
                                       key=bob.new_one_time_keys(1)[0]))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(kind=st.integers(0, 255), data=st.binary(max_size=400))
def test_any_bytes_decrypt_or_say_why(kind: int, data: bytes) -> None:
    alice, bob = _PAIR
    try:
        bob.decrypt(alice.identity(), kind, data)
    except CannotDecrypt:
        pass


_PAIR = pair()


async def test_the_vault_seals_and_only_its_passphrase_opens_it(tmp_path) -> None:
    path = tmp_path / "v"

    def write(p, data: bytes) -> None:
        p.write_bytes(data)

    vault, held = await Vault.open(path, b"pass", write)
    assert held is None
    device = OlmDevice.new(1, 10)
    await vault.save(device.dump(vault.pickle_key))
    sealed = path.read_bytes()
    assert device.ed25519.encode() not in sealed
    with pytest.raises(WrongPassphrase):
        await Vault.open(path, b"other", write)
    again, held = await Vault.open(path, b"pass", write)
    assert held is not None and OlmDevice.load(held, again.pickle_key).ed25519 == device.ed25519
    path.write_bytes(sealed[:-1] + bytes([sealed[-1] ^ 1]))
    with pytest.raises(WrongPassphrase):  # altered: GCM says no
        await Vault.open(path, b"pass", write)
    path.write_bytes(b"junk")
    with pytest.raises(VaultDamaged):
        await Vault.open(path, b"pass", write)
