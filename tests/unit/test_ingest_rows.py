"""A patient's later rows are read with their result alone (the patient cells were read on
the first row): every row still gets the reason a full reading would give."""

from __future__ import annotations

import pytest

from devtools.demo import HEADER
from services.ingest import logic, rows
from services.ingest.values import RowError
from tests.unit.test_ingest_logic import TODAY, row


def full_reading(cells: list[object]) -> str:
    """The reason `parse_row` alone gives for a row (as on a patient's first row)."""
    fields = logic.map_columns(HEADER)
    with pytest.raises(RowError) as refused:
        rows.parse_row({f: cells[i] for f, i in fields.items()}, "GB", TODAY)
    return str(refused.value)


@pytest.mark.parametrize(
    "result",
    [
        {"Test": None},
        {"Value": " "},
        {"Flag": "XYZ"},
        {"Test": "T" * 201},
        {"Value": None, "Flag": "XYZ"},  # two faults: the first one a full reading meets
    ],
)
def test_a_later_row_of_a_patient_is_refused_for_the_reason_a_full_reading_gives(
    result: dict[str, object],
) -> None:
    later = row(**result)
    outcome = logic.group_rows(HEADER, [row(Test="Potassium"), later], "GB", TODAY)
    assert [(r.row, r.reason) for r in outcome.rejected] == [(3, full_reading(later))]
    assert outcome.rows_accepted == 1


def test_a_true_cell_and_a_1_cell_are_different_patient_details() -> None:
    outcome = logic.group_rows(
        HEADER, [row(Name=1.0), row(Name=True, Test="Potassium")], "GB", TODAY
    )
    assert [d.patient.name for d in outcome.drafts] == ["1"]
    assert [r.reason for r in outcome.rejected] == [
        "patient details differ from row 2 for the same Patient ID and Sample date"
    ]


def test_a_patient_across_many_rows_is_one_patient_and_their_tests_stay_apart() -> None:
    tests = [f"Test {n}" for n in range(30)]
    outcome = logic.group_rows(
        HEADER, [row(Test=t) for t in tests] + [row(Test="test 7")], "GB", TODAY
    )
    [draft] = outcome.drafts
    assert [r.test for r in draft.results] == tests
    assert [(r.row, r.reason) for r in outcome.rejected] == [
        (32, "test 'test 7' already given in row 9 for this patient and sample")
    ]
