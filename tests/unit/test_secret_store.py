"""The secret-chat store and timers' parsing: sealed at rest (no plaintext in the file),
one chat per peer (the lower id wins), messages deduplicated by id, self-destruction
leaving a tombstone only, another device's store not taken; `--ttl` parsing is a
property-tested parser."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pigeon.cli.args import MAX_TTL, TTL_UNITS, BadTtl, ttl
from pigeon.client.profile import write_private
from pigeon.client.secret_store import FILE, SecretStore, StoredChat, StoredMessage
from pigeon.crypto import vault as vault_module
from pigeon.crypto.payloads import SecretOpen, SecretText, UnknownPayload, encode_payload
from pigeon.crypto.payloads import read_payload
from pigeon.crypto.vault import Vault, VaultDamaged, WrongPassphrase


@pytest.fixture(autouse=True)
def cheap_kdf(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(vault_module, "TIME_COST", 1)
    monkeypatch.setattr(vault_module, "MEMORY_KIB", 8 * 1024)


def message(n: int, text: str = "hello", ttl: int | None = None) -> StoredMessage:
    return StoredMessage(message_id=f"{n:032x}", sender_id=2, sender_device=5, sent_at=1,
                         text=text, ttl=ttl)


async def open_store(tmp_path, passphrase: bytes = b"pass", device: int = 9  # type: ignore[no-untyped-def]
                     ) -> SecretStore:
    keys, _ = await Vault.open(tmp_path / "device-keys.vault", passphrase, write_private)
    await keys.save(b"keys")
    return await SecretStore.open(keys.sibling(tmp_path / FILE), device)


async def test_sealed_at_rest_reopened_and_swept(tmp_path) -> None:
    store = await open_store(tmp_path)
    chat = store.add_chat(StoredChat(chat_id=50, peer_id=2, starter=1, created_at=0))
    assert store.add_message(chat, message(1, "the-marker", ttl=30))
    assert not store.add_message(chat, message(1, "again"))  # the same id: not twice
    await store.commit()
    assert b"the-marker" not in (tmp_path / FILE).read_bytes()
    again = await open_store(tmp_path)
    (held,) = again.chats()
    assert [m.text for m in held.messages] == ["the-marker"]
    assert again.start_countdown(held, held.messages[0], 1000.0)
    assert not again.start_countdown(held, held.messages[0], 2000.0)  # counts from the first
    assert again.next_expiry() == 1030.0
    assert again.sweep(1029.9) == 0 and again.sweep(1030.0) == 1
    await again.commit()
    third = await open_store(tmp_path)
    (tomb,) = third.chats()[0].messages
    assert tomb.text is None and not third.add_message(third.chats()[0], message(1))
    assert third.next_expiry() is None


async def test_changes_are_appended_and_a_torn_tail_is_dropped(tmp_path) -> None:
    store = await open_store(tmp_path)
    chat = store.add_chat(StoredChat(chat_id=50, peer_id=2, starter=1, created_at=0))
    store.add_message(chat, message(1, "first"))
    await store.commit()
    size = (tmp_path / FILE).stat().st_size
    store.add_message(chat, message(2, "second", ttl=60))
    store.start_countdown(chat, chat.messages[1], 10.0)
    await store.commit()
    grown = (tmp_path / FILE).read_bytes()
    assert len(grown) > size and b"second" not in grown
    (tmp_path / FILE).write_bytes(grown[:-7])  # the last append cut short by a crash
    again = await open_store(tmp_path)
    assert [(m.text, m.expires_at) for m in again.chats()[0].messages] == [
        ("first", None), ("second", None)]  # the countdown's record was the torn one
    (tmp_path / FILE).write_bytes(grown)
    again = await open_store(tmp_path)
    assert [(m.text, m.expires_at) for m in again.chats()[0].messages] == [
        ("first", None), ("second", 70.0)]


async def test_what_self_destructs_leaves_the_file_at_once(tmp_path) -> None:
    store = await open_store(tmp_path)
    chat = store.add_chat(StoredChat(chat_id=50, peer_id=2, starter=1, created_at=0))
    store.add_message(chat, message(1, "burn-after-reading", ttl=5))
    store.add_message(chat, message(2, "keep"))
    await store.commit()
    store.start_countdown(chat, chat.messages[0], 0.0)
    await store.commit()
    before = (tmp_path / FILE).read_bytes()
    assert store.sweep(5.0) == 1
    await store.commit()
    after = (tmp_path / FILE).read_bytes()
    assert len(after) < len(before)  # rewritten whole: the old records are gone
    reopened = await open_store(tmp_path)
    assert [m.text for m in reopened.chats()[0].messages] == [None, "keep"]


async def test_one_chat_per_peer_the_lower_id_wins(tmp_path) -> None:
    store = await open_store(tmp_path)
    first = store.add_chat(StoredChat(chat_id=70, peer_id=2, starter=1, created_at=0))
    second = store.add_chat(StoredChat(chat_id=60, peer_id=2, starter=2, created_at=0))
    assert first is second and first.chat_id == 60 and store.by_id(60) is first
    store.add_chat(StoredChat(chat_id=80, peer_id=2, starter=2, created_at=0))
    assert first.chat_id == 60 and len(store.chats()) == 1


async def test_another_device_s_store_is_not_this_one_s_history(tmp_path) -> None:
    store = await open_store(tmp_path, device=9)
    store.add_chat(StoredChat(chat_id=70, peer_id=2, starter=1, created_at=0))
    await store.commit()
    assert (await open_store(tmp_path, device=10)).chats() == []


async def test_a_store_sealed_under_another_key_is_refused(tmp_path) -> None:
    store = await open_store(tmp_path)
    store.add_chat(StoredChat(chat_id=70, peer_id=2, starter=1, created_at=0))
    await store.commit()
    other, _ = await Vault.open(tmp_path / "elsewhere.vault", b"pass")
    with pytest.raises(WrongPassphrase):
        await SecretStore.open(other.sibling(tmp_path / FILE), 9)


@pytest.mark.parametrize("raw,seconds", [("1s", 1), ("30s", 30), ("5m", 300), ("1h", 3600),
                                         ("2d", 172800), ("7d", MAX_TTL), (" 1H ", 3600)])
def test_ttl_parses(raw: str, seconds: int) -> None:
    assert ttl(raw) == seconds


@pytest.mark.parametrize("raw", ["0s", "8d", "604801s", "30", "1w", "soon", "", "-1s", "1.5h",
                                 "off", "1h30m", "٣s"])
def test_ttl_refuses(raw: str) -> None:
    with pytest.raises(BadTtl):
        ttl(raw)


def test_off_only_where_allowed() -> None:
    assert ttl("off", allow_off=True) is None
    with pytest.raises(BadTtl):
        ttl("off")


@given(st.text(max_size=20))
def test_ttl_parser_never_fails_otherwise(raw: str) -> None:
    try:
        seconds = ttl(raw, allow_off=True)
    except BadTtl:
        return
    assert seconds is None or 1 <= seconds <= MAX_TTL


@given(st.integers(0, 10**7), st.sampled_from(sorted(TTL_UNITS)))
def test_ttl_bounds_are_exact(number: int, unit: str) -> None:
    seconds = number * TTL_UNITS[unit]
    raw = f"{number}{unit}"
    if 1 <= seconds <= MAX_TTL and len(str(number)) <= 7:
        assert ttl(raw) == seconds
    else:
        with pytest.raises(BadTtl):
            ttl(raw)


@given(st.integers(-2**63, 2**64 - 1), st.integers(-2**63, 2**64 - 1))
def test_secret_payload_ids_out_of_bounds_are_malformed(chat_id: int, peer: int) -> None:
    import msgspec

    raw = msgspec.msgpack.encode({"p": "secret.open", "chat_id": chat_id, "starter": 1,
                                  "peer": peer})
    read = read_payload(raw)
    if 1 <= chat_id < 2**63 and 0 <= peer <= 2**62:
        assert read == SecretOpen(chat_id=chat_id, starter=1, peer=peer)
    else:
        assert isinstance(read, UnknownPayload) and "malformed" in read.error


def test_secret_text_names_its_peer() -> None:
    payload = SecretText(chat_id=1, message_id="ab" * 8, text="x", sent_at=1, peer=4)
    assert read_payload(encode_payload(payload)) == payload


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
async def test_a_damaged_file_is_a_typed_error_or_a_shorter_history(tmp_path, data) -> None:
    """Whatever happened to the file (cut, bytes flipped, junk appended), opening it gives
    the history up to the damage, or WrongPassphrase / VaultDamaged: never another error."""
    path = tmp_path / FILE
    if not path.exists():
        store = await open_store(tmp_path)
        chat = store.add_chat(StoredChat(chat_id=50, peer_id=2, starter=1, created_at=0))
        for n in range(3):
            store.add_message(chat, message(n))
            await store.commit()
    pristine = path.read_bytes()
    raw = bytearray(pristine)
    cut = data.draw(st.integers(0, len(raw)))
    flips = data.draw(st.lists(st.integers(0, max(0, cut - 1)), max_size=3))
    damaged = bytearray(raw[:cut])
    for at in flips:
        if damaged:
            damaged[at] ^= 0x40
    damaged += data.draw(st.binary(max_size=40))
    path.write_bytes(bytes(damaged))
    keys, _ = await Vault.open(tmp_path / "device-keys.vault", b"pass", write_private)
    try:
        store = await SecretStore.open(keys.sibling(path), 9)
        assert len([m for c in store.chats() for m in c.messages]) <= 3
    except (WrongPassphrase, VaultDamaged):
        pass
    finally:
        path.write_bytes(pristine)


@pytest.mark.parametrize("sealed", [b"", b"\x00" * 7, b"\x01" * 11, b"\x02" * 27])
def test_a_record_cut_short_is_an_altered_record(sealed: bytes) -> None:
    # found by hypothesis: a record shorter than a nonce made AESGCM raise a bare ValueError
    vault = Vault(None, b"s" * 16, b"k" * 64)
    with pytest.raises(WrongPassphrase):
        vault.open_record(sealed, b"context")
