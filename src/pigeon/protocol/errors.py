"""Pigeon's one exception tree. Every error has a stable ``code`` that travels on the wire.

::

    PigeonError                      base; .code, .message, .retry_after, .retry_spread
    ├── ProtocolError                the peer broke the wire protocol; the connection may close
    │     MALFORMED_FRAME, FRAME_TOO_LARGE, UNSUPPORTED_VERSION, HELLO_REQUIRED
    ├── UnknownMethod                UNKNOWN_METHOD
    ├── InvalidArgument              INVALID_ARGUMENT, PHONE_INVALID, PHONE_NOT_SUPPORTED,
    │                                USERNAME_INVALID, TEXT_INVALID, TITLE_INVALID, NAME_INVALID,
    │                                DEVICE_INVALID, KEY_SIGNATURE_INVALID,
    │                                IDENTITY_KEYS_MISSING, TOO_MANY_KEYS, STICKER_SET_NAME_INVALID,
    │                                EMOJI_INVALID, LICENCE_INVALID, IMAGE_INVALID,
    │                                IMAGE_TOO_LARGE, TOO_MANY_STICKERS, TOO_MANY_STICKER_SETS,
    │                                FILE_TOO_LARGE, FILE_NAME_INVALID, PART_OUT_OF_RANGE,
    │                                PART_SIZE_MISMATCH, PART_HASH_MISMATCH, MEDIA_TYPE_MISMATCH,
    │                                RANGE_NOT_SATISFIABLE, CHAT_NOT_ENCRYPTED,
    │                                NOT_SUPPORTED_ACROSS_REGIONS
    ├── Unauthorized                 AUTH_REQUIRED, SESSION_INVALID, CODE_INVALID, CODE_EXPIRED,
    │                                SIGN_UP_REQUIRED, ACCOUNT_DISABLED
    ├── Forbidden                    FORBIDDEN, NOT_A_MEMBER, NOT_ADMIN, NOT_AUTHOR,
    │                                USER_PRIVACY_RESTRICTED, NOT_SET_AUTHOR,
    │                                ENCRYPTION_REQUIRED
    ├── NotFound                     USER_NOT_FOUND, CHAT_NOT_FOUND, MESSAGE_NOT_FOUND,
    │                                SESSION_NOT_FOUND, INVITATION_NOT_FOUND, STREAM_NOT_FOUND,
    │                                REQUEST_NOT_FOUND, DEVICE_NOT_FOUND, STICKER_SET_NOT_FOUND,
    │                                STICKER_NOT_FOUND, FILE_NOT_FOUND, UPLOAD_NOT_FOUND
    ├── Conflict                     USERNAME_TAKEN, GROUP_FULL, RANDOM_ID_DUPLICATE,
    │                                ALREADY_MEMBER, PEER_IS_SELF, QUOTA_EXCEEDED,
    │                                IDENTITY_KEYS_CHANGED, STICKER_SET_NAME_TAKEN,
    │                                STICKER_SET_PUBLISHED, TOO_MANY_UPLOADS, PART_EXISTS,
    │                                UPLOAD_INCOMPLETE
    ├── ProofOfWorkRequired          POW_REQUIRED, POW_INVALID (solve auth.challenge, retry)
    ├── RateLimited                  RATE_LIMITED, BANNED, TOO_MANY_CONNECTIONS
    │                                (retryable: .retry_after seconds)
    ├── ResultTooLarge               RESULT_TOO_LARGE (the answer would not fit in a frame)
    ├── WrongRegion                  WRONG_REGION (the account lives in another region)
    └── Unavailable                  UNAVAILABLE, SHUTTING_DOWN, STORAGE_FAILED, OVERLOADED,
                                     DEFERRED, REGION_UNAVAILABLE (retryable; OVERLOADED and
                                     DEFERRED, a bulk call over its connection's cap, carry
                                     .retry_after;
                                     SHUTTING_DOWN, the going-away notice, .retry_after and
                                     .retry_spread)

The SDK raises the same classes that the server raised, rebuilt from the code by
:func:`error_from_wire`; ``docs/protocol.md`` lists every code.
"""

from __future__ import annotations

from typing import NamedTuple


class PigeonError(Exception):
    """Base of every Pigeon error. ``code`` is stable; ``message`` is for people."""

    code: str = "INTERNAL"
    retryable: bool = False

    def __init__(
        self, message: str = "", *, code: str | None = None, retry_after: float | None = None,
        retry_spread: float | None = None, endpoints: list[str] | None = None,
    ) -> None:
        if code is not None:  # first: a message left out defaults to this code, not the class's
            self.code = code
        super().__init__(message or self.code)
        self.message = message or self.code
        self.retry_after = retry_after
        # Come back after retry_after plus a delay picked at random in [0, retry_spread]: a
        # going-away notice spreads a restart's reconnects over this window (issue 13).
        self.retry_spread = retry_spread
        # Where to go instead (WRONG_REGION: the home region's endpoints); empty for most.
        self.endpoints: list[str] = list(endpoints or [])

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class ProtocolError(PigeonError):
    code = "MALFORMED_FRAME"


class UnknownMethod(PigeonError):
    code = "UNKNOWN_METHOD"


class InvalidArgument(PigeonError):
    code = "INVALID_ARGUMENT"


class Unauthorized(PigeonError):
    code = "AUTH_REQUIRED"


class Forbidden(PigeonError):
    code = "FORBIDDEN"


class NotFound(PigeonError):
    code = "NOT_FOUND"


class Conflict(PigeonError):
    code = "CONFLICT"


class ProofOfWorkRequired(PigeonError):
    """The server is under load: this unauthenticated call needs a solved challenge."""

    code = "POW_REQUIRED"
    retryable = True


class RateLimited(PigeonError):
    code = "RATE_LIMITED"
    retryable = True


class Unavailable(PigeonError):
    code = "UNAVAILABLE"
    retryable = True


class ResultTooLarge(PigeonError):
    """The answer would exceed the largest frame the server sends (``MAX_SERVER_FRAME_BYTES``)
    and cannot be paged; asking again gets the same. Paged results never meet it."""

    code = "RESULT_TOO_LARGE"


class WrongRegion(PigeonError):
    """The number's account lives in another region (issue 12): ``endpoints`` are that
    region's (the error frame's field of that name); the message names the region; log in
    there."""

    code = "WRONG_REGION"


class Code(NamedTuple):
    """What one error code means, besides its text: the one table of per-error facts."""

    cls: type[PigeonError]  # the class the SDK raises for it
    # An honest client meets it in normal use (a wrong login code, a taken username, a chat it
    # just left): the server does not count it towards closing the connection.
    harmless: bool = False
    # The server did not run the call: it refused at the door (protocol, limits, proof of
    # work, overload) or before dispatch (no such method, undecodable params, not logged in).
    # Anything else (CODE_INVALID, PHONE_INVALID ...) means the method ran.
    not_run: bool = False


# Every code the server may send, with its facts.
ERROR_CODES: dict[str, Code] = {
    "MALFORMED_FRAME": Code(ProtocolError, not_run=True),
    "FRAME_TOO_LARGE": Code(ProtocolError, not_run=True),
    "UNSUPPORTED_VERSION": Code(ProtocolError, not_run=True),
    "HELLO_REQUIRED": Code(ProtocolError, not_run=True),
    "UNKNOWN_METHOD": Code(UnknownMethod, not_run=True),
    "INVALID_ARGUMENT": Code(InvalidArgument, not_run=True),
    "PHONE_INVALID": Code(InvalidArgument),
    "PHONE_NOT_SUPPORTED": Code(InvalidArgument),
    "USERNAME_INVALID": Code(InvalidArgument),
    "TEXT_INVALID": Code(InvalidArgument),
    "TITLE_INVALID": Code(InvalidArgument),
    "NAME_INVALID": Code(InvalidArgument),
    "DEVICE_INVALID": Code(InvalidArgument),
    "KEY_SIGNATURE_INVALID": Code(InvalidArgument),
    "IDENTITY_KEYS_MISSING": Code(InvalidArgument),
    "TOO_MANY_KEYS": Code(InvalidArgument),
    "CHAT_NOT_ENCRYPTED": Code(InvalidArgument),
    "STICKER_SET_NAME_INVALID": Code(InvalidArgument),
    "EMOJI_INVALID": Code(InvalidArgument),
    "LICENCE_INVALID": Code(InvalidArgument),
    "IMAGE_INVALID": Code(InvalidArgument),
    "IMAGE_TOO_LARGE": Code(InvalidArgument),
    "TOO_MANY_STICKERS": Code(InvalidArgument),
    "TOO_MANY_STICKER_SETS": Code(InvalidArgument),
    # media (issue 10): the HTTP media API answers with these codes too
    "FILE_TOO_LARGE": Code(InvalidArgument),
    "FILE_NAME_INVALID": Code(InvalidArgument),
    "PART_OUT_OF_RANGE": Code(InvalidArgument),
    "PART_SIZE_MISMATCH": Code(InvalidArgument),
    "PART_HASH_MISMATCH": Code(InvalidArgument),
    "MEDIA_TYPE_MISMATCH": Code(InvalidArgument),
    "RANGE_NOT_SATISFIABLE": Code(InvalidArgument),
    "AUTH_REQUIRED": Code(Unauthorized, not_run=True),
    "SESSION_INVALID": Code(Unauthorized, not_run=True),
    "CODE_INVALID": Code(Unauthorized, harmless=True),
    "CODE_EXPIRED": Code(Unauthorized),
    "SIGN_UP_REQUIRED": Code(Unauthorized, harmless=True),
    "ACCOUNT_DISABLED": Code(Unauthorized),
    "FORBIDDEN": Code(Forbidden),
    "NOT_A_MEMBER": Code(Forbidden, harmless=True),
    "NOT_ADMIN": Code(Forbidden),
    "NOT_AUTHOR": Code(Forbidden),
    "USER_PRIVACY_RESTRICTED": Code(Forbidden),
    "ENCRYPTION_REQUIRED": Code(Forbidden),
    "NOT_SET_AUTHOR": Code(Forbidden),
    "NOT_FOUND": Code(NotFound),
    "USER_NOT_FOUND": Code(NotFound, harmless=True),
    "CHAT_NOT_FOUND": Code(NotFound),
    "MESSAGE_NOT_FOUND": Code(NotFound, harmless=True),
    "SESSION_NOT_FOUND": Code(NotFound, harmless=True),
    "INVITATION_NOT_FOUND": Code(NotFound),
    "STREAM_NOT_FOUND": Code(NotFound),
    "REQUEST_NOT_FOUND": Code(NotFound, harmless=True),
    "DEVICE_NOT_FOUND": Code(NotFound),
    "STICKER_SET_NOT_FOUND": Code(NotFound, harmless=True),
    "STICKER_NOT_FOUND": Code(NotFound, harmless=True),
    "FILE_NOT_FOUND": Code(NotFound),
    "UPLOAD_NOT_FOUND": Code(NotFound),
    "CONFLICT": Code(Conflict),
    "USERNAME_TAKEN": Code(Conflict, harmless=True),
    "GROUP_FULL": Code(Conflict),
    "RANDOM_ID_DUPLICATE": Code(Conflict),
    "ALREADY_MEMBER": Code(Conflict, harmless=True),
    "PEER_IS_SELF": Code(Conflict, harmless=True),
    "QUOTA_EXCEEDED": Code(Conflict),
    "IDENTITY_KEYS_CHANGED": Code(Conflict),
    "STICKER_SET_NAME_TAKEN": Code(Conflict, harmless=True),
    "STICKER_SET_PUBLISHED": Code(Conflict),
    "TOO_MANY_UPLOADS": Code(Conflict),
    "PART_EXISTS": Code(Conflict),
    "UPLOAD_INCOMPLETE": Code(Conflict),
    "POW_REQUIRED": Code(ProofOfWorkRequired, harmless=True, not_run=True),
    "POW_INVALID": Code(ProofOfWorkRequired, not_run=True),
    "RATE_LIMITED": Code(RateLimited, not_run=True),
    "BANNED": Code(RateLimited, not_run=True),
    "TOO_MANY_CONNECTIONS": Code(RateLimited, harmless=True, not_run=True),
    "UNAVAILABLE": Code(Unavailable, not_run=True),
    "OVERLOADED": Code(Unavailable, harmless=True, not_run=True),
    "SHUTTING_DOWN": Code(Unavailable, not_run=True),
    "DEFERRED": Code(Unavailable, harmless=True, not_run=True),
    "STORAGE_FAILED": Code(Unavailable, not_run=True),
    "RESULT_TOO_LARGE": Code(ResultTooLarge),
    # regions (issue 12): log in at the account's home region; the other region is away;
    # only text reaches people homed in another region yet
    "WRONG_REGION": Code(WrongRegion, harmless=True),
    "REGION_UNAVAILABLE": Code(Unavailable, harmless=True, not_run=True),  # nothing written
    "NOT_SUPPORTED_ACROSS_REGIONS": Code(InvalidArgument),
    "INTERNAL": Code(PigeonError),
}

# The class the SDK raises for each code.
CODES: dict[str, type[PigeonError]] = {code: c.cls for code, c in ERROR_CODES.items()}
HARMLESS_CODES = frozenset(code for code, c in ERROR_CODES.items() if c.harmless)
NOT_RUN_CODES = frozenset(code for code, c in ERROR_CODES.items() if c.not_run)


def error_from_wire(code: str, message: str, retry_after: float | None = None,
                    retry_spread: float | None = None,
                    endpoints: list[str] | None = None) -> PigeonError:
    """Rebuild the exception that the peer described; unknown codes become PigeonError."""
    cls = CODES.get(code, PigeonError)
    return cls(message, code=code, retry_after=retry_after, retry_spread=retry_spread,
               endpoints=endpoints)
