"""Which numbers may receive a login code (server/phones.py)."""

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.protocol.errors import InvalidArgument
from pigeon.server.phones import login_number


@pytest.mark.parametrize("raw, e164, cc", [
    ("+49 151 12345678", "+4915112345678", 49), ("+1 202-555-0101", "+12025550101", 1),
    ("+447911123456", "+447911123456", 44), ("+33 6 12 34 56 78", "+33612345678", 33),
])
def test_mobile_numbers_are_accepted(raw, e164, cc):
    number = login_number(raw)
    assert (number.e164, number.country_code) == (e164, cc)


@pytest.mark.parametrize("raw, code", [
    ("+19005551234", "PHONE_NOT_SUPPORTED"),   # premium rate
    ("+448712345678", "PHONE_NOT_SUPPORTED"),  # premium rate
    ("+4930123456", "PHONE_NOT_SUPPORTED"),    # fixed line
    ("+498001234567", "PHONE_NOT_SUPPORTED"),  # toll free
    ("+4980012345", "PHONE_INVALID"), ("0151 12345678", "PHONE_INVALID"), ("", "PHONE_INVALID"),
])
def test_other_numbers_are_refused_with_a_typed_error(raw, code):
    with pytest.raises(InvalidArgument) as err:
        login_number(raw)
    assert err.value.code == code


@given(st.one_of(st.text(max_size=40), st.from_regex(r"\+[0-9 ]{4,20}", fullmatch=True)))
def test_any_text_is_a_mobile_number_or_a_typed_refusal(raw):
    try:
        number = login_number(raw)
    except InvalidArgument as err:
        assert err.code in ("PHONE_INVALID", "PHONE_NOT_SUPPORTED")
        return
    parsed = phonenumbers.parse(number.e164)
    assert phonenumbers.number_type(parsed) in (phonenumbers.PhoneNumberType.MOBILE,
                                                phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
    assert parsed.country_code == number.country_code
