"""Pigeon's one exception tree. Every error has a stable ``code`` that travels on the wire.

::

    PigeonError                      base; .code, .message, .retry_after
    ├── ProtocolError                the peer broke the wire protocol; the connection may close
    │     MALFORMED_FRAME, FRAME_TOO_LARGE, UNSUPPORTED_VERSION, HELLO_REQUIRED
    ├── UnknownMethod                UNKNOWN_METHOD
    ├── InvalidArgument              INVALID_ARGUMENT, PHONE_INVALID, PHONE_NOT_SUPPORTED,
    │                                USERNAME_INVALID, TEXT_INVALID, TITLE_INVALID, NAME_INVALID,
    │                                DEVICE_INVALID
    ├── Unauthorized                 AUTH_REQUIRED, SESSION_INVALID, CODE_INVALID, CODE_EXPIRED,
    │                                SIGN_UP_REQUIRED
    ├── Forbidden                    FORBIDDEN, NOT_A_MEMBER, NOT_ADMIN, NOT_AUTHOR,
    │                                USER_PRIVACY_RESTRICTED
    ├── NotFound                     USER_NOT_FOUND, CHAT_NOT_FOUND, MESSAGE_NOT_FOUND,
    │                                SESSION_NOT_FOUND, INVITATION_NOT_FOUND, STREAM_NOT_FOUND
    ├── Conflict                     USERNAME_TAKEN, GROUP_FULL, RANDOM_ID_DUPLICATE,
    │                                ALREADY_MEMBER, PEER_IS_SELF, QUOTA_EXCEEDED
    ├── ProofOfWorkRequired          POW_REQUIRED, POW_INVALID (solve auth.challenge, retry)
    ├── RateLimited                  RATE_LIMITED, BANNED, TOO_MANY_CONNECTIONS
    │                                (retryable: .retry_after seconds)
    ├── ResultTooLarge               RESULT_TOO_LARGE (the answer would not fit in a frame)
    └── Unavailable                  UNAVAILABLE, SHUTTING_DOWN, STORAGE_FAILED, OVERLOADED
                                     (retryable; OVERLOADED carries .retry_after)

The SDK raises the same classes that the server raised, rebuilt from the code by
:func:`error_from_wire`; ``docs/protocol.md`` lists every code.
"""

from __future__ import annotations


class PigeonError(Exception):
    """Base of every Pigeon error. ``code`` is stable; ``message`` is for people."""

    code: str = "INTERNAL"
    retryable: bool = False

    def __init__(
        self, message: str = "", *, code: str | None = None, retry_after: float | None = None
    ) -> None:
        if code is not None:  # first: a message left out defaults to this code, not the class's
            self.code = code
        super().__init__(message or self.code)
        self.message = message or self.code
        self.retry_after = retry_after

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


# Every code the server may send, with the class the SDK raises for it.
CODES: dict[str, type[PigeonError]] = {
    "MALFORMED_FRAME": ProtocolError,
    "FRAME_TOO_LARGE": ProtocolError,
    "UNSUPPORTED_VERSION": ProtocolError,
    "HELLO_REQUIRED": ProtocolError,
    "UNKNOWN_METHOD": UnknownMethod,
    "INVALID_ARGUMENT": InvalidArgument,
    "PHONE_INVALID": InvalidArgument,
    "PHONE_NOT_SUPPORTED": InvalidArgument,
    "USERNAME_INVALID": InvalidArgument,
    "TEXT_INVALID": InvalidArgument,
    "TITLE_INVALID": InvalidArgument,
    "NAME_INVALID": InvalidArgument,
    "DEVICE_INVALID": InvalidArgument,
    "AUTH_REQUIRED": Unauthorized,
    "SESSION_INVALID": Unauthorized,
    "CODE_INVALID": Unauthorized,
    "CODE_EXPIRED": Unauthorized,
    "SIGN_UP_REQUIRED": Unauthorized,
    "FORBIDDEN": Forbidden,
    "NOT_A_MEMBER": Forbidden,
    "NOT_ADMIN": Forbidden,
    "NOT_AUTHOR": Forbidden,
    "USER_PRIVACY_RESTRICTED": Forbidden,
    "NOT_FOUND": NotFound,
    "USER_NOT_FOUND": NotFound,
    "CHAT_NOT_FOUND": NotFound,
    "MESSAGE_NOT_FOUND": NotFound,
    "SESSION_NOT_FOUND": NotFound,
    "INVITATION_NOT_FOUND": NotFound,
    "STREAM_NOT_FOUND": NotFound,
    "CONFLICT": Conflict,
    "USERNAME_TAKEN": Conflict,
    "GROUP_FULL": Conflict,
    "RANDOM_ID_DUPLICATE": Conflict,
    "ALREADY_MEMBER": Conflict,
    "PEER_IS_SELF": Conflict,
    "QUOTA_EXCEEDED": Conflict,
    "POW_REQUIRED": ProofOfWorkRequired,
    "POW_INVALID": ProofOfWorkRequired,
    "RATE_LIMITED": RateLimited,
    "BANNED": RateLimited,
    "TOO_MANY_CONNECTIONS": RateLimited,
    "UNAVAILABLE": Unavailable,
    "OVERLOADED": Unavailable,
    "SHUTTING_DOWN": Unavailable,
    "STORAGE_FAILED": Unavailable,
    "RESULT_TOO_LARGE": ResultTooLarge,
    "INTERNAL": PigeonError,
}


def error_from_wire(code: str, message: str, retry_after: float | None = None) -> PigeonError:
    """Rebuild the exception that the peer described; unknown codes become PigeonError."""
    cls = CODES.get(code, PigeonError)
    return cls(message, code=code, retry_after=retry_after)
