"""The exception tree (pigeon.protocol.errors): codes travel on the wire and come back as
the same classes."""

from __future__ import annotations

import inspect

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.protocol import errors
from pigeon.protocol.errors import CODES, PigeonError, error_from_wire

ERROR_CLASSES = [
    cls for _, cls in inspect.getmembers(errors, inspect.isclass)
    if issubclass(cls, PigeonError)
]


@pytest.mark.parametrize("code", sorted(CODES))
def test_error_from_wire_maps_every_code_to_its_class(code: str) -> None:
    error = error_from_wire(code, "what happened", 1.5)
    assert type(error) is CODES[code]
    assert (error.code, error.message, error.retry_after) == (code, "what happened", 1.5)
    assert str(error) == f"{code}: what happened"


@given(code=st.text(min_size=1, max_size=30).filter(lambda c: c not in CODES),
       message=st.text(max_size=30))
def test_unknown_codes_become_the_base_class(code: str, message: str) -> None:
    """A newer server's code reaches an older SDK as a PigeonError, code intact."""
    error = error_from_wire(code, message)
    assert type(error) is PigeonError
    assert error.code == code
    assert error.message == (message or code)


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_each_class_default_code_maps_back_to_it(cls: type[PigeonError]) -> None:
    assert CODES[cls.code] is cls
    assert cls().code == cls.code


def test_codes_are_stable_identifiers() -> None:
    for code in CODES:
        assert code.isupper() and code.replace("_", "").isalnum(), code


def test_retryable_errors() -> None:
    assert errors.RateLimited.retryable and errors.Unavailable.retryable
    # A refusal on the merits does not change by asking again.
    for cls in (errors.ProtocolError, errors.UnknownMethod, errors.InvalidArgument,
                errors.Unauthorized, errors.Forbidden, errors.NotFound, errors.Conflict):
        assert not cls.retryable, cls


def test_a_missing_message_defaults_to_the_code() -> None:
    assert error_from_wire("NOT_ADMIN", "").message == "NOT_ADMIN"
    assert errors.Forbidden().message == "FORBIDDEN"


def test_every_code_is_drawn_in_the_tree() -> None:
    """The module docstring is the map of the tree; a code missing there is undocumented."""
    doc = errors.__doc__ or ""
    defaults = {cls.code for cls in ERROR_CLASSES}
    missing = [code for code in CODES if code not in doc and code not in defaults]
    assert missing == []
