"""The Megolm wrapper and the rotation policy, without a server: a member reads what a
session carries from its key's index on; altered, replayed, moved or mis-attributed
messages are refused with a reason, never a crash."""

from __future__ import annotations

import secrets

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pigeon.client.profile import write_private
from pigeon.crypto import megolm
from pigeon.crypto import vault as vault_module
from pigeon.crypto.megolm import GroupState, RotationPolicy
from pigeon.crypto.olm import CannotDecrypt
from pigeon.crypto.payloads import RoomKey, RoomKeyRequest, encode_payload, read_payload
from pigeon.crypto.vault import Vault, WrongPassphrase

KEY = secrets.token_bytes(32)  # vodozemac's pickle key
CHAT, ALICE, ALICE_DEVICE, BOB = 7, 1, 11, 2
DAY = 86400.0


def started(now: float = 0.0) -> tuple[megolm.Outbound, megolm.Inbound]:
    out, key = megolm.new_outbound(CHAT, now, {ALICE, BOB}, {11, 21}, KEY)
    inbound = megolm.inbound_from_key(CHAT, ALICE_DEVICE, ALICE, out.session_id, key,
                                      exported=False, pickle_key=KEY)
    return out, inbound


def test_a_member_reads_each_message_and_replays_are_refused() -> None:
    out, inbound = started()
    state = GroupState()
    for n, text in enumerate(["first", "second ✓", "x" * 4096]):
        sealed = megolm.read_sealed(megolm.encrypt(out, ALICE_DEVICE, text, KEY))
        read = megolm.decrypt(inbound, sealed, CHAT, ALICE, KEY)
        assert (read.text, read.message_index, read.device_id) == (text, n, ALICE_DEVICE)
        megolm.check_replay(state, read, message_id=100 + n)
        megolm.check_replay(state, read, message_id=100 + n)  # read again: the same message
        with pytest.raises(CannotDecrypt, match="replayed"):
            megolm.check_replay(state, read, message_id=999)  # the same ciphertext re-sent
    assert out.sent == 3


def test_moved_misattributed_or_altered_messages_are_refused() -> None:
    out, inbound = started()
    raw = megolm.encrypt(out, ALICE_DEVICE, "secret", KEY)
    sealed = megolm.read_sealed(raw)
    with pytest.raises(CannotDecrypt, match="another chat"):
        moved = msgspec.structs.replace(inbound, chat_id=CHAT + 1)  # the server moved it
        megolm.decrypt(moved, sealed, CHAT + 1, ALICE, KEY)
    with pytest.raises(CannotDecrypt, match="sender"):
        megolm.decrypt(inbound, sealed, CHAT, BOB, KEY)  # the server names another sender
    for position in range(0, len(sealed.megolm), 7):
        flipped = bytearray(sealed.megolm)
        flipped[position] ^= 0x01
        bad = msgspec.structs.replace(sealed, megolm=bytes(flipped))
        with pytest.raises(CannotDecrypt):
            megolm.decrypt(inbound, bad, CHAT, ALICE, KEY)


def test_an_exported_key_reads_from_its_index_only() -> None:
    out, inbound = started()
    early = megolm.read_sealed(megolm.encrypt(out, ALICE_DEVICE, "before", KEY))
    late = megolm.read_sealed(megolm.encrypt(out, ALICE_DEVICE, "after", KEY))
    exported = megolm.export(inbound, 1, KEY)
    assert exported is not None
    later = megolm.inbound_from_key(CHAT, ALICE_DEVICE, ALICE, out.session_id, exported,
                                    exported=True, pickle_key=KEY)
    assert megolm.decrypt(later, late, CHAT, ALICE, KEY).text == "after"
    with pytest.raises(megolm.KeyTooNew):
        megolm.decrypt(later, early, CHAT, ALICE, KEY)
    assert megolm.better(inbound, later, KEY) and not megolm.better(later, inbound, KEY)
    with pytest.raises(CannotDecrypt, match="not of the session"):
        megolm.inbound_from_key(CHAT, ALICE_DEVICE, ALICE, "another-session", exported,
                                exported=True, pickle_key=KEY)
    with pytest.raises(CannotDecrypt, match="not a group session key"):
        megolm.inbound_from_key(CHAT, ALICE_DEVICE, ALICE, out.session_id, "garbage!",
                                exported=False, pickle_key=KEY)


def test_rotation_policy() -> None:
    policy = RotationPolicy(max_messages=3, max_age=7 * DAY)
    out, _ = started(now=1000.0)
    members, devices = {ALICE, BOB}, {11, 21}
    assert megolm.rotation_due(out, 1000.0, policy, members, devices) is None
    assert megolm.rotation_due(out, 1000.0, policy, {ALICE}, devices) == "members changed"
    assert megolm.rotation_due(out, 1000.0, policy, {ALICE, BOB, 3}, devices) \
        == "members changed"
    assert megolm.rotation_due(out, 1000.0, policy, members, {11}) == "devices changed"
    assert megolm.rotation_due(out, 1000.0, policy, members, {11, 21, 22}) \
        == "devices changed"
    assert megolm.rotation_due(out, 1000.0 + 7 * DAY, policy, members, devices) == "too old"
    for _ in range(3):
        megolm.encrypt(out, ALICE_DEVICE, "m", KEY)
    assert megolm.rotation_due(out, 1000.0, policy, members, devices) == "3 messages sent"
    assert RotationPolicy() == RotationPolicy(100, 7 * DAY)  # the defaults


def test_entitlement() -> None:
    out, _ = started()
    assert megolm.entitled(out, BOB, own_user=ALICE)           # a member then
    assert not megolm.entitled(out, 3, own_user=ALICE)         # never a member of it
    assert megolm.entitled(None, ALICE, own_user=ALICE)        # own devices
    assert not megolm.entitled(None, BOB, own_user=ALICE)      # a session we never sent


def test_a_device_added_since_gets_only_what_follows() -> None:
    """Bob's device 21 had the session from its start; a device Bob logged in since asks
    (renew, a key request): it may read our next messages, never the ones before it."""
    out, inbound = started()
    for _ in range(3):
        megolm.encrypt(out, ALICE_DEVICE, "before the new device", KEY)
    assert megolm.first_index(out, BOB, 21, own_user=ALICE) == 0
    assert megolm.first_index(out, BOB, 99, own_user=ALICE) == 3
    assert megolm.first_index(out, ALICE, 98, own_user=ALICE) == 0   # our own devices
    assert megolm.first_index(out, 3, 31, own_user=ALICE) is None    # never a member
    exported = megolm.export(inbound, 3, KEY)
    later = megolm.inbound_from_key(CHAT, ALICE_DEVICE, ALICE, out.session_id, exported,
                                    exported=True, pickle_key=KEY)
    assert megolm.first_known_index(later, KEY) == 3


def test_state_round_trips() -> None:
    out, inbound = started()
    state = GroupState(device_id=ALICE_DEVICE, outbound={CHAT: out},
                       inbound={"k": inbound})
    assert megolm.load_state(megolm.dump_state(state)) == state
    assert megolm.load_state(None) == GroupState()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_as_a_group_message_read_or_refused(data: bytes) -> None:
    out, inbound = started()
    try:
        sealed = megolm.read_sealed(data)
        megolm.decrypt(inbound, sealed, CHAT, ALICE, KEY)
    except CannotDecrypt:
        pass


async def test_the_group_state_file_is_sealed_under_the_device_vault(tmp_path, monkeypatch):
    monkeypatch.setattr(vault_module, "MEMORY_KIB", 8 * 1024)
    opened, _ = await Vault.open(tmp_path / "device-keys.vault", b"pass", write_private)
    await opened.save(b"device")
    beside = opened.sibling(tmp_path / "group-keys.vault")
    await beside.save(b"marker-groups")
    assert b"marker-groups" not in (tmp_path / "group-keys.vault").read_bytes()
    again, held = await Vault.open(tmp_path / "device-keys.vault", b"pass", write_private)
    assert held == b"device"
    assert await again.sibling(tmp_path / "group-keys.vault").read() == b"marker-groups"
    assert await again.sibling(tmp_path / "absent.vault").read() is None
    other, _ = await Vault.open(tmp_path / "other" / "device-keys.vault", b"pass")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "group-keys.vault").write_bytes(
        (tmp_path / "group-keys.vault").read_bytes())
    with pytest.raises(WrongPassphrase):  # sealed under another device's key (another salt)
        await other.sibling(tmp_path / "other" / "group-keys.vault").read()
    data = bytearray((tmp_path / "group-keys.vault").read_bytes())
    data[-1] ^= 1
    (tmp_path / "group-keys.vault").write_bytes(bytes(data))
    with pytest.raises(WrongPassphrase):
        await again.sibling(tmp_path / "group-keys.vault").read()


def test_group_payloads_round_trip() -> None:
    for payload in (
        RoomKey(chat_id=3, session_id="s", session_key="k", exported=True, sender_device=9,
                sender_user=4),
        RoomKeyRequest(chat_id=3, sender_device=9, session_id="s", index=12),
    ):
        assert read_payload(encode_payload(payload)) == payload


@given(st.sampled_from(["group.key", "group.key_request"]),
       st.dictionaries(st.sampled_from(["chat_id", "session_id", "session_key", "index",
                                        "sender_device", "sender_user", "exported"]),
                       st.integers(-2**63, 2**64 - 1) | st.text(max_size=5000) | st.booleans()
                       | st.none()))
def test_any_group_payload_is_read_or_malformed_never_raises(tag: str, fields: dict) -> None:
    read = read_payload(msgspec.msgpack.encode({"p": tag, **fields}))
    assert isinstance(read, (RoomKey, RoomKeyRequest)) or read.error  # type: ignore[union-attr]
