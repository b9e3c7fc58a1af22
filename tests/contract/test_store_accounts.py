"""Contract: login codes, users, usernames and sessions."""

from __future__ import annotations

import asyncio

from contract_support import T0, make_users, raises

from pigeon.protocol.errors import Conflict, NotFound
from pigeon.store import LoginCode, Store


# -- login codes ----------------------------------------------------------------------------
def code(code_id: str = "c1", expires: float = T0 + 300) -> LoginCode:
    return LoginCode(id=code_id, phone="+15550001111", code_hash=b"\x01" * 32, expires=expires,
                     attempts=0)


async def test_take_code_attempt_counts_each_attempt(store: Store) -> None:
    await store.save_login_code(code())
    seen = []
    for _ in range(3):
        taken = await store.take_code_attempt("c1", T0, max_attempts=3)
        assert taken is not None
        assert (taken.phone, taken.code_hash, taken.expires) == ("+15550001111", b"\x01" * 32,
                                                                 T0 + 300)
        seen.append(taken.attempts)
    assert seen == [1, 2, 3]


async def test_take_code_attempt_refuses_after_max_attempts(store: Store) -> None:
    await store.save_login_code(code())
    for _ in range(3):
        assert await store.take_code_attempt("c1", T0, max_attempts=3) is not None
    # A brute-forcer gets nothing more, however often they try.
    for _ in range(3):
        assert await store.take_code_attempt("c1", T0, max_attempts=3) is None


async def test_take_code_attempt_refuses_after_expiry(store: Store) -> None:
    await store.save_login_code(code(expires=T0 + 300))
    assert await store.take_code_attempt("c1", T0 + 299, max_attempts=5) is not None
    assert await store.take_code_attempt("c1", T0 + 301, max_attempts=5) is None


async def test_take_code_attempt_on_missing_or_deleted_code(store: Store) -> None:
    assert await store.take_code_attempt("nope", T0, max_attempts=5) is None
    await store.save_login_code(code())
    await store.delete_login_code("c1")
    assert await store.take_code_attempt("c1", T0, max_attempts=5) is None


async def test_codes_are_independent(store: Store) -> None:
    await store.save_login_code(code("a"))
    await store.save_login_code(code("b"))
    assert await store.take_code_attempt("a", T0, max_attempts=1) is not None
    assert await store.take_code_attempt("a", T0, max_attempts=1) is None
    taken = await store.take_code_attempt("b", T0, max_attempts=1)
    assert taken is not None and taken.attempts == 1


async def test_a_code_is_consumed_once_under_concurrency(store: Store) -> None:
    # Issue 7, finding 8: two sign-ins with the same correct code both succeeded. Consuming
    # is the one atomic step that decides which of them wins.
    await store.save_login_code(code())
    won = await asyncio.gather(*(store.consume_login_code("c1") for _ in range(8)))
    assert sorted(won) == [False] * 7 + [True]
    assert await store.take_code_attempt("c1", T0, max_attempts=5) is None
    assert await store.consume_login_code("c1") is False
    assert await store.consume_login_code("never-issued") is False


# -- users ----------------------------------------------------------------------------------
async def test_create_user_is_idempotent_per_phone(store: Store) -> None:
    first = await store.create_user("+15550001111", "Alice", T0)
    again = await store.create_user("+15550001111", "Someone else", T0 + 1)
    other = await store.create_user("+15550002222", "Bob", T0)
    assert again == first
    assert first.name == "Alice"
    assert other.id != first.id
    assert (first.username, first.phone_discoverable, first.pts) == (None, False, 0)
    assert await store.user_by_phone("+15550001111") == first
    assert await store.user_by_phone("+15559999999") is None


async def test_get_users_skips_unknown_ids(store: Store) -> None:
    a, b = await make_users(store, 2)
    found = await store.get_users([b, 10**9, a])
    assert sorted(u.id for u in found) == sorted([a, b])
    assert await store.get_users([]) == []


async def test_update_user_name_and_privacy(store: Store) -> None:
    (a,) = await make_users(store, 1)
    user = await store.update_user(a, name="Alice B.")
    assert user.name == "Alice B."
    user = await store.update_user(a, phone_discoverable=True)
    assert (user.name, user.phone_discoverable) == ("Alice B.", True)
    assert (await store.get_users([a]))[0] == user


async def test_update_unknown_user(store: Store) -> None:
    with raises(NotFound, "USER_NOT_FOUND"):
        await store.update_user(12345, name="ghost")


# -- usernames ------------------------------------------------------------------------------
async def test_usernames_are_unique_case_insensitively(store: Store) -> None:
    a, b = await make_users(store, 2)
    alice = await store.update_user(a, username="Alice_1")
    assert alice.username == "Alice_1"  # kept as typed
    assert await store.user_by_username("alice_1") == alice
    assert await store.user_by_username("ALICE_1") == alice
    with raises(Conflict, "USERNAME_TAKEN"):
        await store.update_user(b, username="aLiCe_1")
    assert (await store.get_users([b]))[0].username is None


async def test_changing_case_of_own_username_is_allowed(store: Store) -> None:
    (a,) = await make_users(store, 1)
    await store.update_user(a, username="alice_1")
    user = await store.update_user(a, username="ALICE_1")
    assert user.username == "ALICE_1"


async def test_ellipsis_leaves_username_alone(store: Store) -> None:
    (a,) = await make_users(store, 1)
    await store.update_user(a, username="alice_1")
    user = await store.update_user(a, name="New name")
    assert user.username == "alice_1"


async def test_released_username_can_be_taken(store: Store) -> None:
    a, b = await make_users(store, 2)
    await store.update_user(a, username="alice_1")
    released = await store.update_user(a, username=None)
    assert released.username is None
    assert await store.user_by_username("alice_1") is None
    bob = await store.update_user(b, username="Alice_1")
    assert await store.user_by_username("alice_1") == bob


async def test_refused_update_changes_nothing(store: Store) -> None:
    a, b = await make_users(store, 2)
    await store.update_user(a, username="alice_1")
    before = (await store.get_users([b]))[0]
    with raises(Conflict, "USERNAME_TAKEN"):
        await store.update_user(b, name="Renamed", username="alice_1", phone_discoverable=True)
    assert (await store.get_users([b]))[0] == before


async def test_many_users_may_have_no_username(store: Store) -> None:
    ids = await make_users(store, 3)
    for uid in ids:
        await store.update_user(uid, username=None)
    assert all(u.username is None for u in await store.get_users(ids))


# -- sessions -------------------------------------------------------------------------------
async def test_sessions_are_found_by_token_hash(store: Store) -> None:
    a, b = await make_users(store, 2)
    s1 = await store.create_session(a, b"h1" * 16, "phone", "10.0.0.1", T0)
    s2 = await store.create_session(a, b"h2" * 16, "laptop", "10.0.0.2", T0 + 1)
    s3 = await store.create_session(b, b"h3" * 16, "tablet", "10.0.0.3", T0 + 2)
    assert len({s1.id, s2.id, s3.id}) == 3
    assert (s1.user_id, s1.device, s1.address, s1.created, s1.last_active) == (
        a, "phone", "10.0.0.1", T0, T0)
    assert await store.session_by_token(b"h2" * 16) == s2
    assert await store.session_by_token(b"h3" * 16) == s3
    assert await store.session_by_token(b"unknown") is None
    assert [s.id for s in await store.list_sessions(a)] == [s1.id, s2.id]
    assert [s.id for s in await store.list_sessions(b)] == [s3.id]


async def test_session_addresses_newest_first_without_repeats(store: Store) -> None:
    a, b = await make_users(store, 2)
    await store.create_session(a, b"h1", "phone", "10.0.0.1", T0)
    await store.create_session(b, b"h2", "laptop", "10.0.0.2", T0 + 1)
    s3 = await store.create_session(b, b"h3", "tablet", "10.0.0.1", T0 + 2)
    assert await store.session_addresses(10) == ["10.0.0.1", "10.0.0.2"]
    await store.touch_session(s3.id, "10.0.0.3", T0 + 3)
    assert await store.session_addresses(10) == ["10.0.0.3", "10.0.0.2", "10.0.0.1"]
    assert await store.session_addresses(1) == ["10.0.0.3"]


async def test_touch_session(store: Store) -> None:
    (a,) = await make_users(store, 1)
    s = await store.create_session(a, b"h1", "phone", "10.0.0.1", T0)
    await store.touch_session(s.id, "10.0.0.9", T0 + 60)
    touched = await store.session_by_token(b"h1")
    assert touched is not None
    assert (touched.address, touched.last_active, touched.created) == ("10.0.0.9", T0 + 60, T0)


async def test_delete_one_session(store: Store) -> None:
    (a,) = await make_users(store, 1)
    s1 = await store.create_session(a, b"h1", "phone", "", T0)
    s2 = await store.create_session(a, b"h2", "laptop", "", T0)
    assert await store.delete_sessions(a, only=s1.id) == [s1.id]
    assert await store.session_by_token(b"h1") is None
    assert await store.session_by_token(b"h2") == s2


async def test_cannot_delete_another_users_session(store: Store) -> None:
    a, b = await make_users(store, 2)
    theirs = await store.create_session(b, b"h1", "phone", "", T0)
    with raises(NotFound, "SESSION_NOT_FOUND"):
        await store.delete_sessions(a, only=theirs.id)
    assert await store.session_by_token(b"h1") == theirs
    with raises(NotFound, "SESSION_NOT_FOUND"):
        await store.delete_sessions(a, only=10**9)


async def test_delete_all_other_sessions(store: Store) -> None:
    a, b = await make_users(store, 2)
    keep = await store.create_session(a, b"h1", "phone", "", T0)
    others = [await store.create_session(a, f"o{i}".encode(), "x", "", T0) for i in range(3)]
    bobs = await store.create_session(b, b"hb", "phone", "", T0)
    deleted = await store.delete_sessions(a, keep=keep.id)
    assert sorted(deleted) == sorted(s.id for s in others)
    assert [s.id for s in await store.list_sessions(a)] == [keep.id]
    assert [s.id for s in await store.list_sessions(b)] == [bobs.id]
    assert await store.delete_sessions(a, keep=keep.id) == []


async def test_session_ids_are_never_reused(store: Store) -> None:
    # Issue 7, finding 4: deleting the newest session handed its id to the next one, so an
    # id in a stale "terminate" or in a log line could name somebody else's new device.
    (a,) = await make_users(store, 1)
    seen = set()
    for i in range(4):
        s = await store.create_session(a, f"t{i}".encode(), "phone", "", T0)
        assert s.id not in seen
        seen.add(s.id)
        assert await store.delete_sessions(a, only=s.id) == [s.id]
    newest = await store.create_session(a, b"last", "phone", "", T0)
    assert newest.id > max(seen)

