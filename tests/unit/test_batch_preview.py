"""The pure parts of previews and the profile form: masking what uploaders may not read,
naming the column of a rejected cell, and the dashboard form of a profile both ways."""

from __future__ import annotations

from contracts.v1 import Flag
from services.gateway.profile_pages import form_fields, parse_form
from services.infra.sheet_profiles import SheetProfile
from services.ingest.preview import column_of, mask, suggestion


def test_a_preview_masks_names_and_patient_ids_keeping_only_a_hint() -> None:
    assert mask("Ada Okafor") == "A** O*****"
    assert mask("P10023", keep_end=2) == "P***23"
    assert mask("P1", keep_end=2) == "P*"


def test_a_rejected_cell_is_named_by_the_column_its_reason_starts_with() -> None:
    assert column_of("Date of birth: '31/02/1980' is not a date") == "Date of birth"
    assert column_of("Phone: '12345' is not a phone number") == "Phone"
    assert column_of("the row has no value") == ""


def test_a_profile_is_suggested_only_when_none_was_chosen() -> None:
    sysmex = SheetProfile(name="Sysmex", columns={"patient_id": ["Lab No"]})
    assert suggestion(None, [sysmex], ["LAB NO", "Name"]) == "Sysmex"
    assert suggestion(sysmex, [sysmex], ["LAB NO"]) is None
    assert suggestion(None, [sysmex], ["Patient ID"]) is None


def test_the_profile_form_reads_back_what_it_shows() -> None:
    profile = SheetProfile(
        name="Roche",
        columns={"patient_id": ["Sample No", "Lab No"]},
        day_first=False,
        region="DE",
        flags={"pos": Flag.ABNORMAL, "neg": Flag.NORMAL},
        layout="wide",
    )
    fields, problems = parse_form(form_fields(profile))
    assert problems == [] and SheetProfile.model_validate(fields) == profile


def test_a_flag_word_line_without_a_known_code_is_named_by_its_line() -> None:
    _, problems = parse_form({"name": "x", "flags": "pos = A\nneg\n\nodd = Q"})
    assert [p.split(":")[0] for p in problems] == ["Flag words, line 2", "Flag words, line 4"]
