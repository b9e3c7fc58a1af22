"""Which numbers a login code may be sent to.

Checked before anything is spent (a code, a budget, a database row): the number must be
valid (``phonenumbers``) and of a type that receives SMS, mobile or a range where fixed and
mobile numbers cannot be told apart (the US and Canada). Never premium-rate, shared-cost,
toll-free, UAN, VoIP, pager, personal or voicemail numbers: premium and shared-cost ranges
are what SMS pumping fraud sends codes to, and the others cannot take a code or would
only ring a landline.
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberType

from pigeon.protocol.errors import InvalidArgument

SMS_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})

_TYPE_NAMES = {v: k.lower().replace("_", " ") for k, v in vars(PhoneNumberType).items()
               if k.isupper() and isinstance(v, int)}


@dataclass(frozen=True)
class LoginNumber:
    e164: str           # +CC..., the form numbers are stored in
    country_code: int   # the calling code (49, 44, 1): the key of the per-country budget


def valid_number(raw: str) -> phonenumbers.PhoneNumber:
    """A valid number in international form (+CC...), or PHONE_INVALID."""
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        raise InvalidArgument(
            f"{raw!r} is not a phone number; write it in international form, like +12025550123",
            code="PHONE_INVALID") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidArgument(f"{raw!r} is not a valid phone number", code="PHONE_INVALID")
    return number


def e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def login_number(raw: str) -> LoginNumber:
    """The number a login code goes to, or PHONE_INVALID / PHONE_NOT_SUPPORTED."""
    number = valid_number(raw)
    kind = phonenumbers.number_type(number)
    if kind not in SMS_TYPES:
        raise InvalidArgument(
            f"login codes go to mobile numbers only; {raw!r} is a "
            f"{_TYPE_NAMES.get(kind, 'unknown')} number", code="PHONE_NOT_SUPPORTED")
    return LoginNumber(e164(number), number.country_code)
