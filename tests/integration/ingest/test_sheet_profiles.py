"""Reading sheets with a lab's mapping profile: its column names, date order, phone region,
flag words and layout; stored profiles used by the ingest service."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from contracts.v1 import Flag
from devtools.demo import HEADER, demo_rows
from services.infra.database import Database
from services.infra.service import Resources
from services.infra.sheet_profiles import ProfileNotFound, SheetProfile, SheetProfiles
from services.ingest import adapters, profiles
from services.ingest.errors import SheetError
from services.ingest.main import create_app
from tests.integration.ingest.test_ingest_service import finished, upload
from tests.integration.ingest.test_lab_exports import workbook
from tests.support import eventually

TODAY = date(2026, 11, 25)
SAMPLED = date(2026, 11, 20)
SYSMEX = SheetProfile(
    name="Sysmex",
    columns={"patient_id": ["Lab No"], "value": ["Res"], "flag": ["Interp"]},
    day_first=True,
    region="FR",
    flags={"pos": Flag.ABNORMAL},
)


def sysmex_sheet() -> bytes:
    header: list[object] = [
        "Lab No",
        "Name",
        "Date of birth",
        "Sex",
        "Phone",
        "Sample date",
        "Test",
        "Res",
    ]
    header += ["Unit", "Reference range", "Interp", "Ward"]
    rows = demo_rows(1, sample_date=SAMPLED)[:2]
    rows[0][2] = rows[1][2] = "03/04/1980"
    rows[0][4] = rows[1][4] = "06 12 34 56 78"
    rows[0][10] = "Pos"
    return workbook(("Results", [header, *[[*r[:11], "B2"] for r in rows]]))


def test_a_profile_reads_its_column_names_date_order_region_and_flag_words() -> None:
    table = adapters.read_sheet(sysmex_sheet(), "export.xlsx", SYSMEX)
    outcome = profiles.group(table, SYSMEX, "GB", TODAY)
    assert outcome.rejected == []
    [draft] = outcome.drafts
    assert draft.patient.date_of_birth == date(1980, 4, 3)
    assert draft.patient.phone == "+33612345678"
    assert draft.results[0].flag is Flag.ABNORMAL


def test_columns_the_profile_does_not_know_are_listed_not_dropped_silently() -> None:
    table = adapters.read_sheet(sysmex_sheet(), "export.xlsx", SYSMEX)
    assert table.unknown == ["Ward"]


def test_without_its_profile_the_same_sheet_is_refused_naming_the_missing_columns() -> None:
    with pytest.raises(SheetError, match="no column for Patient ID, Value"):
        adapters.read_sheet(sysmex_sheet(), "export.xlsx")


def test_a_profile_may_insist_on_the_wide_layout() -> None:
    rows: list[list[object]] = [
        [*HEADER[:6], "Sodium"],
        ["P7", "Ada Okafor", "1980-03-03", "F", "07400 123456"],
    ]
    rows[1] += [SAMPLED.isoformat(), 140]
    wide = SheetProfile(name="wide", layout="wide")
    table = adapters.read_sheet(workbook(("Results", rows)), "export.xlsx", wide)
    assert table.layout == "wide"
    [draft] = profiles.group(table, wide, "GB", TODAY).drafts
    assert [(r.test, r.value) for r in draft.results] == [("Sodium", "140")]


async def test_profiles_are_stored_per_lab_listed_by_name_and_replaced_when_saved_again(
    db: Database,
) -> None:
    store = SheetProfiles(db)
    await store.save("demo-lab", SYSMEX, "alice")
    await store.save("demo-lab", SheetProfile(name="Abbott"), "alice")
    await store.save("demo-lab", SYSMEX.model_copy(update={"day_first": False}), "bob")
    assert [p.name for p in await store.list("demo-lab")] == ["Abbott", "Sysmex"]
    assert (await store.get("demo-lab", "Sysmex")).day_first is False
    with pytest.raises(ProfileNotFound, match="'Sysmex' is not known"):
        await store.get("other-lab", "Sysmex")


async def test_a_batch_uploaded_with_a_profile_is_read_with_it(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    await SheetProfiles(db).save("demo-lab", SYSMEX, "alice")
    resources = make_resources("ingest")
    async with create_app(resources):
        good = await upload(resources, sysmex_sheet(), profile="Sysmex")
        unknown = await upload(resources, sysmex_sheet(), profile="Nope")
        batch = await eventually(lambda: finished(db, good))
        refused = await eventually(lambda: finished(db, unknown))
    assert (batch["status"], batch["reports_created"], batch["rejected_rows"]) == (
        "ingested",
        1,
        [],
    )
    assert refused["status"] == "failed"
    assert "sheet profile 'Nope' is not known" in refused["failure_reason"]
