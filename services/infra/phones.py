"""Mobile numbers, as every door takes them (a sheet, an LIS message, staff correcting one):
read in the lab's region, checked to be a mobile that can receive an SMS, kept as E.164."""

from __future__ import annotations

import phonenumbers


class PhoneError(ValueError):
    """The text is not a mobile number; the message says why, quoting it (staff see it)."""


def normalise_phone(raw: str, region: str) -> str:
    """E.164 form of a mobile number; national numbers are read in the lab's region."""
    if not raw:
        raise PhoneError("Phone is empty")
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise PhoneError(f"Phone '{raw}' is not a phone number") from None
    # One look-up: number_type is UNKNOWN exactly when is_valid_number is false (both find
    # the number's region first, the costly part of a sheet's 1,000 distinct phones).
    kind = phonenumbers.number_type(number)
    if kind == phonenumbers.PhoneNumberType.UNKNOWN:
        raise PhoneError(f"Phone '{raw}' is not a valid number for region {region}")
    if kind not in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        raise PhoneError(f"Phone '{raw}' is not a mobile number, so it cannot receive an SMS")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
