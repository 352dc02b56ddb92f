"""Sheet mapping profiles: the model staff edit and the suggestion made from a sheet's headers."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contracts.v1 import Flag
from services.infra.sheet_profiles import SheetProfile, suggest
from services.ingest import profiles


def test_a_profiles_header_names_and_flag_words_are_kept_in_matching_form() -> None:
    profile = SheetProfile.model_validate(
        {"name": "Sysmex", "columns": {"patient_id": ["  Lab_No "]}, "flags": {" Pos ": "A"}}
    )
    assert profile.columns == {"patient_id": ["lab no"]}
    assert profile.flag_for("POS") is Flag.ABNORMAL


def test_a_header_name_given_for_two_fields_is_refused() -> None:
    with pytest.raises(ValidationError, match="given for both"):
        SheetProfile.model_validate(
            {"name": "x", "columns": {"value": ["Result"], "flag": ["result"]}}
        )


@pytest.mark.parametrize("bad", [{"region": "gb"}, {"name": ""}, {"layout": "diagonal"}])
def test_a_profile_with_an_unusable_setting_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SheetProfile.model_validate({"name": "x", **bad})


def test_the_profile_naming_most_of_a_sheets_headers_is_suggested() -> None:
    sysmex = SheetProfile(name="Sysmex", columns={"patient_id": ["lab no"], "value": ["res"]})
    roche = SheetProfile(name="Roche", columns={"patient_id": ["lab no"]})
    assert suggest([roche, sysmex], ["Lab No", "RES", "Name"]) is sysmex
    assert suggest([roche, sysmex], ["Patient ID", "Name"]) is None


def test_a_name_the_profile_gives_a_field_is_no_longer_read_as_its_usual_field() -> None:
    profile = SheetProfile(name="x", columns={"flag": ["result"], "value": ["reading"]})
    columns = profiles.columns(profile)
    assert columns["flag"][0] == "result" and "result" not in columns["value"]
    assert columns["value"][0] == "reading" and "value" in columns["value"]
