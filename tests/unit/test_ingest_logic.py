from datetime import date, datetime

import pytest

from contracts.v1 import Flag, IngestLisResult
from devtools.demo import HEADER
from services.ingest import logic

TODAY = date(2026, 11, 25)


def row(**overrides: object) -> list[object]:
    values: dict[str, object] = {
        "Patient ID": "P1",
        "Name": "Ada Okafor",
        "Date of birth": datetime(1980, 3, 3),
        "Sex": "F",
        "Phone": "07400 123456",
        "Sample date": "2026-11-20",
        "Test": "Sodium",
        "Value": 140.0,
        "Unit": "mmol/L",
        "Reference range": "135–145",
        "Flag": None,
    }
    values.update(overrides)
    return [values[h] for h in HEADER]


def test_rows_of_one_patient_and_sample_become_one_report() -> None:
    outcome = logic.group_rows(
        HEADER, [row(), row(Test="Potassium", Value="5.9", Flag="H")], "GB", TODAY
    )
    assert outcome.rejected == []
    [draft] = outcome.drafts
    assert draft.source_key == "sheet:P1:2026-11-20"
    assert draft.rows == [2, 3]
    assert [(r.test, r.value, r.flag) for r in draft.results] == [
        ("Sodium", "140", Flag.NORMAL),
        ("Potassium", "5.9", Flag.HIGH),
    ]
    assert draft.patient.phone == "+447400123456"
    assert draft.patient.date_of_birth == date(1980, 3, 3)


def test_another_sample_date_makes_another_report() -> None:
    outcome = logic.group_rows(HEADER, [row(), row(**{"Sample date": "21/11/2026"})], "GB", TODAY)
    assert [d.source_key for d in outcome.drafts] == [
        "sheet:P1:2026-11-20",
        "sheet:P1:2026-11-21",
    ]


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"Phone": "12345"}, "Phone '12345' is not a valid number for region GB"),
        ({"Phone": "020 7946 0000"}, "is not a mobile number"),
        ({"Name": None}, "Name is empty"),
        ({"Date of birth": "31/02/1980"}, "Date of birth '31/02/1980' is not a date"),
        ({"Sample date": "2027-01-01"}, "Sample date 2027-01-01 is in the future"),
        ({"Flag": "X"}, "Flag 'X' is not a known flag"),
        ({"Sex": "Q"}, "Sex 'Q' is not one of F, M, U"),
        ({"Name": "x" * 201}, "Name: String should have at most 200 characters"),
    ],
)
def test_bad_row_is_rejected_with_its_row_number_and_reason(
    overrides: dict[str, object], reason: str
) -> None:
    outcome = logic.group_rows(HEADER, [row(), row(Test="Urea", **overrides)], "GB", TODAY)
    assert len(outcome.drafts) == 1
    [rejected] = outcome.rejected
    assert rejected.row == 3
    assert reason in rejected.reason


def test_conflicting_patient_details_and_repeated_tests_are_rejected() -> None:
    outcome = logic.group_rows(
        HEADER, [row(), row(Test="Urea", Name="Someone Else"), row()], "GB", TODAY
    )
    assert [(r.row, r.reason) for r in outcome.rejected] == [
        (3, "patient details differ from row 2 for the same Patient ID and Sample date"),
        (4, "test 'Sodium' already given in row 2 for this patient and sample"),
    ]


def test_blank_lines_are_skipped_and_not_counted() -> None:
    outcome = logic.group_rows(HEADER, [row(), [None] * len(HEADER), row(Test="Urea")], "GB", TODAY)
    assert outcome.rows_total == 2
    assert outcome.drafts[0].rows == [2, 4]


def test_headers_match_aliases_and_missing_columns_are_named() -> None:
    positions = logic.map_columns(
        ["MRN", "Patient Name", "DOB", "mobile", "Collected", "Analyte", "Result"]
    )
    assert positions["patient_id"] == 0 and positions["value"] == 6
    with pytest.raises(logic.SheetError, match="no column for Phone, Value"):
        logic.map_columns(["Patient ID", "Name", "Date of birth", "Sample date", "Test"])


def test_values_like_less_than_keep_their_text() -> None:
    [draft] = logic.group_rows(HEADER, [row(Value="< 5.0")], "GB", TODAY).drafts
    assert draft.results[0].value == "< 5.0"


def test_lis_message_becomes_a_draft_keyed_by_accession() -> None:
    message = IngestLisResult.model_validate(
        {
            "correlation_id": "c1",
            "message_id": "m1",
            "lab_id": "lab",
            "accession": "A-77",
            "patient": {
                "patient_id": "P9",
                "name": "Ben Novak",
                "date_of_birth": "1970-01-02",
                "phone": "+447400123456",
            },
            "sample_date": "2026-11-24",
            "results": [{"test": "CRP", "value": "12", "unit": "mg/L", "flag": "H"}],
        }
    )
    draft = logic.lis_draft(message, "GB", TODAY)
    assert draft.source_key == "lis:A-77"
    assert draft.results[0].flag is Flag.HIGH
    with pytest.raises(logic.RowError, match="is not a phone number"):
        logic.lis_draft(
            message.model_copy(
                update={"patient": message.patient.model_copy(update={"phone": "1"})}
            ),
            "GB",
            TODAY,
        )


def test_a_report_missing_a_rejected_row_of_its_patient_and_sample_knows_it_is_incomplete() -> None:
    outcome = logic.group_rows(
        HEADER,
        [
            row(),
            row(Test="HIV 1/2 Ab", Value="Positive", Flag="ZZ"),  # no such flag: rejected
            row(**{"Patient ID": "P2", "Name": "Ben Lindqvist", "Phone": "07400 123457"}),
        ],
        "GB",
        TODAY,
    )
    first, second = outcome.drafts
    assert [(r.row, r.patient_id) for r in first.rejected] == [(3, "P1")]
    assert "Flag 'ZZ'" in first.rejected[0].reason
    assert second.rejected == []


def test_a_rejected_row_of_another_sample_of_the_same_patient_leaves_this_report_complete() -> None:
    outcome = logic.group_rows(
        HEADER,
        [row(), row(**{"Sample date": "2026-11-21", "Phone": "not a phone"})],
        "GB",
        TODAY,
    )
    [draft] = outcome.drafts
    assert draft.rejected == []
    assert [r.row for r in outcome.rejected] == [3]


def test_a_rejected_row_naming_no_patient_could_be_anyones_so_every_report_waits() -> None:
    outcome = logic.group_rows(
        HEADER,
        [
            row(),
            row(**{"Patient ID": "P2", "Name": "Ben Lindqvist", "Phone": "07400 123457"}),
            row(**{"Patient ID": None, "Test": "Potassium", "Value": "6.9"}),
        ],
        "GB",
        TODAY,
    )
    assert [[r.row for r in d.rejected] for d in outcome.drafts] == [[4], [4]]


def test_the_report_document_lists_the_rows_it_is_missing() -> None:
    outcome = logic.group_rows(HEADER, [row(), row(Value=None, Test="Urea")], "GB", TODAY)
    [draft] = outcome.drafts
    document = logic.report_document(
        draft,
        report_id="r1",
        lab_id="lab",
        correlation_id="c1",
        source={"kind": "sheet", "batch_id": "b1", "rows": draft.rows},
        now=datetime(2026, 11, 25, 9, 0),
    )
    assert document["rejected_rows"] == [{"row": 3, "reason": "Value is empty"}]
