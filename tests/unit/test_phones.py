"""Mobile numbers are judged as the phone library judges them: intake asks it for a number's
type once (`number_type`), and a number is refused as invalid exactly when the library's own
validity check says so."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from services.infra import phones


def written_numbers() -> list[str]:
    """National and international numbers as sheets write them, valid or not."""
    pick = random.Random(20261126)
    national = [f"0{pick.randint(10**9, 10**10 - 1)}" for _ in range(1500)]
    codes = (1, 33, 44, 49, 234, 91, 61, 255, 971)
    foreign = [f"+{pick.choice(codes)}{pick.randint(10**7, 10**11)}" for _ in range(1500)]
    return [*national, *foreign, "07400 123456", "020 7946 0000", "+44 7624 123456"]


@pytest.mark.parametrize("region", ["GB", "NG", "US"])
def test_a_number_is_refused_as_invalid_exactly_when_the_library_calls_it_invalid(
    region: str,
) -> None:
    for raw in written_numbers():
        try:
            number = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            continue
        try:
            phones.normalise_phone(raw, region)
            verdict = "mobile"
        except phones.PhoneError as error:
            verdict = "invalid" if "is not a valid number" in str(error) else "not mobile"
        assert (verdict == "invalid") == (not phonenumbers.is_valid_number(number)), raw


def test_an_isle_of_man_mobile_read_in_gb_is_a_mobile() -> None:
    assert phones.normalise_phone("+44 7624 123456", "GB") == "+447624123456"
