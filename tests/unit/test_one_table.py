"""Per-method and per-error facts live in one table each (issue 8, deliverable 5): every
method and every error code has its facts, and the sets the server, shield, SDK and siege
read are exactly the ones they were before the tables moved."""

from __future__ import annotations

from pigeon.client import client
from pigeon.protocol import errors
from pigeon.protocol.methods import METHODS, Method
from pigeon.server import connection
from pigeon.shield import guard
from pigeon.siege import wire


def test_every_method_has_its_facts() -> None:
    for name, method in METHODS.items():
        assert isinstance(method, Method), name
        assert method.work in ("interactive", "bulk"), name
        for fact in ("auth", "paged", "slotless", "expensive", "retried", "sends"):
            assert isinstance(getattr(method, fact), bool), (name, fact)
        # Proof of work guards only what anyone may call before login.
        assert not method.expensive or not method.auth, name
        # A paged listing is bulk work.
        assert not method.paged or method.work == "bulk", name


def test_method_sets_are_what_they_were() -> None:
    assert guard.BULK_METHODS == {
        "messages.history", "updates.get_difference", "chats.list", "chats.members",
        "users.get", "sessions.list", "updates.get_stream_difference", "keys.query",
        # issue 11: the listings of blocks, contacts and message requests
        "users.blocked", "contacts.list", "requests.list",
        # issue 10: finding sticker sets and stickers
        "stickers.search", "stickers.get_set", "stickers.by_emoji"}
    assert guard.PAGED_METHODS == {"chats.list", "chats.members", "users.blocked",
                                   "contacts.list", "requests.list", "stickers.search",
                                   "stickers.by_emoji"}
    assert guard.EXPENSIVE_UNAUTHENTICATED == {"auth.send_code", "auth.sign_in"}
    assert guard.SLOTLESS == {"auth.challenge"}
    # (a set's removal or move resent would remove or move a second sticker)
    assert client.NOT_RETRIED == {"auth.send_code", "auth.sign_in", "chats.create_group",
                                  "envelopes.send", "stickers.create_set", "stickers.remove",
                                  "stickers.move"}
    # Counted in the per-account send rate too (the shield's limits on what reaches others).
    assert guard.SENDING_METHODS == {"messages.send", "messages.forward", "envelopes.send",
                                     "messages.send_sticker"}


def test_every_error_code_has_its_facts() -> None:
    for code, facts in errors.ERROR_CODES.items():
        assert isinstance(facts, errors.Code), code
        assert issubclass(facts.cls, errors.PigeonError), code
        assert isinstance(facts.harmless, bool) and isinstance(facts.not_run, bool), code
        assert errors.CODES[code] is facts.cls
    assert errors.CODES.keys() == errors.ERROR_CODES.keys()


def test_error_sets_are_what_they_were() -> None:
    assert connection._HARMLESS == {
        "CODE_INVALID", "SIGN_UP_REQUIRED", "USERNAME_TAKEN", "USER_NOT_FOUND",
        "MESSAGE_NOT_FOUND", "NOT_A_MEMBER", "ALREADY_MEMBER", "SESSION_NOT_FOUND",
        "PEER_IS_SELF", "OVERLOADED", "POW_REQUIRED", "TOO_MANY_CONNECTIONS",
        "REQUEST_NOT_FOUND",  # issue 11: answering a request twice (two devices) is normal
        # issue 10: a mistyped set name, a name someone has, a sticker moved meanwhile
        "STICKER_SET_NOT_FOUND", "STICKER_SET_NAME_TAKEN", "STICKER_NOT_FOUND",
        "DEFERRED",  # issue 13: a device catching up meets its bulk cap, and is told when
        # issue 12: a number homed elsewhere (the SDK moves there); another region away
        "WRONG_REGION", "REGION_UNAVAILABLE"}
    # The siege's old rule: these codes, or any code of a door-refusal class.
    door = (errors.ProtocolError, errors.UnknownMethod, errors.RateLimited, errors.Unavailable,
            errors.ProofOfWorkRequired)
    for code, cls in errors.CODES.items():
        old = code in {"INVALID_ARGUMENT", "AUTH_REQUIRED", "SESSION_INVALID"} or issubclass(
            cls, door)
        assert wire.is_refusal(code) == old, code
    assert not wire.is_refusal("SOME_FUTURE_CODE")


def test_retryable_follows_the_class() -> None:
    for code, facts in errors.ERROR_CODES.items():
        assert errors.error_from_wire(code, "").retryable == facts.cls.retryable, code
