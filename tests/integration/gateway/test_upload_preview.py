"""An upload previewed before anything is made: the gateway stores the sheet and a
`previewing` batch, ingest reads it exactly as for a real run but only records what it would
make; Confirm makes the reports (once, however often it is pressed), Discard makes none."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import date, timedelta
from typing import Any

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient

from contracts.v1 import utcnow
from devtools.demo import HEADER, demo_rows, sheet_of
from services.gateway.accounts_store import ApiTokens, create_user
from services.gateway.api import PREFIX
from services.gateway.permissions import Role
from services.gateway.redriver import Redriver
from services.infra.database import Database
from services.infra.service import Resources
from services.infra.sheet_profiles import SheetProfiles
from services.ingest.main import create_app as create_ingest
from tests.integration.ingest.test_lab_exports import workbook
from tests.integration.ingest.test_sheet_profiles import SYSMEX, sysmex_sheet
from tests.support import PASSWORD, drain, eventually


@pytest.fixture
async def ingest(make_resources: Callable[[str], Resources]) -> AsyncIterator[None]:
    """The ingest service, running beside the gateway."""
    async with create_ingest(make_resources("ingest")):
        yield


async def bearer(client: TestClient[Any, Any], db: Database, user: str, role: Role) -> None:
    await create_user(db, user, PASSWORD, role=role)
    _, token = await ApiTokens(db).create(user, "tests")
    client.session.headers["Authorization"] = f"Bearer {token}"


@pytest.fixture
async def api(client: TestClient[Any, Any], db: Database) -> TestClient[Any, Any]:
    """The client with an uploader's bearer token on every request."""
    await bearer(client, db, "uma", Role.UPLOADER)
    return client


async def upload(api: TestClient[Any, Any], data: bytes, query: str = "preview=true") -> str:
    form = FormData()
    form.add_field("file", data, filename="export.xlsx")
    response = await api.post(f"{PREFIX}/batches?{query}", data=form)
    assert response.status == 202, await response.text()
    return str((await response.json())["batch_id"])


async def previewed(api: TestClient[Any, Any], batch_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        batch = await (await api.get(f"{PREFIX}/batches/{batch_id}")).json()
        return batch if batch["preview"] else None

    return dict(await eventually(probe))


def sheet_with_a_bad_phone() -> bytes:
    rows = demo_rows(2, sample_date=date(2026, 11, 20))
    rows[3][4] = "12345"  # row 5 of the sheet
    return workbook(("Results", [[*HEADER, "Ward"], *[[*row, "B2"] for row in rows]]))


@pytest.mark.usefixtures("ingest")
async def test_a_preview_shows_what_it_would_make_and_confirm_makes_the_reports_exactly_once(
    api: TestClient[Any, Any], db: Database, amqp_url: str
) -> None:
    batch_id = await upload(api, sheet_of(demo_rows(3, sample_date=date(2026, 11, 20))))
    batch = await previewed(api, batch_id)
    assert batch["status"] == "previewing"
    preview = batch["preview"]
    assert (preview["reports_total"], preview["rows_total"], preview["rejected"]) == (3, 24, [])
    first = preview["reports"][0]
    assert first["results"] == 8 and first["incomplete"] is False
    assert "*" in first["name"] and "*" in first["patient_id"]  # masked for the uploader
    assert await db.reports.count_documents({}) == 0  # nothing made before Confirm
    assert await drain(amqp_url, "render.report") == []

    confirmed = await api.post(f"{PREFIX}/batches/{batch_id}/confirm")
    again = await api.post(f"{PREFIX}/batches/{batch_id}/confirm")
    assert (confirmed.status, again.status) == (200, 200), await again.text()

    async def ingested() -> dict[str, Any] | None:
        return await db.batches.find_one({"_id": batch_id, "status": "ingested"})

    done = await eventually(ingested)
    assert done["reports_created"] == 3
    assert await db.reports.count_documents({"source.batch_id": batch_id}) == 3
    assert len(await drain(amqp_url, "render.report")) == 3
    discard = await api.post(f"{PREFIX}/batches/{batch_id}/discard")
    assert discard.status == 409  # confirmed: it can no longer be discarded
    actions = [a["action"] async for a in db.audit.find({"object": batch_id})]
    assert actions.count("batch.confirmed") == 1


@pytest.mark.usefixtures("ingest")
async def test_a_discarded_preview_makes_no_report_and_cannot_be_confirmed_later(
    api: TestClient[Any, Any], db: Database, amqp_url: str
) -> None:
    batch_id = await upload(api, sheet_of(demo_rows(2, sample_date=date(2026, 11, 20))))
    await previewed(api, batch_id)
    discarded = await api.post(f"{PREFIX}/batches/{batch_id}/discard")
    assert discarded.status == 200 and (await discarded.json())["status"] == "discarded"
    late = await api.post(f"{PREFIX}/batches/{batch_id}/confirm")
    assert late.status == 409
    assert await db.reports.count_documents({}) == 0
    assert await drain(amqp_url, "render.report") == []
    assert await db.audit.find_one({"action": "batch.discarded", "object": batch_id})


@pytest.mark.usefixtures("ingest")
async def test_a_preview_names_each_rejected_cell_and_the_columns_it_does_not_read(
    api: TestClient[Any, Any],
) -> None:
    batch_id = await upload(api, sheet_with_a_bad_phone())
    preview = (await previewed(api, batch_id))["preview"]
    [rejected] = preview["rejected"]
    assert (rejected["row"], rejected["column"]) == (5, "Phone")
    assert "phone" in rejected["reason"].lower()
    assert preview["unknown_columns"] == ["Ward"]
    assert [r["incomplete"] for r in preview["reports"]] == [True, False]


@pytest.mark.usefixtures("ingest")
async def test_a_sheet_only_a_stored_profile_reads_is_previewed_with_that_profile_suggested(
    api: TestClient[Any, Any], db: Database, settings: Any
) -> None:
    await SheetProfiles(db).save(settings.lab_id, SYSMEX, "alice")
    without = (await previewed(api, await upload(api, sysmex_sheet())))["preview"]
    assert "no column for Patient ID, Value" in without["error"]
    assert without["suggested_profile"] == "Sysmex"
    refused = await api.post(f"{PREFIX}/batches/{await upload(api, sysmex_sheet())}/confirm")
    assert refused.status == 409  # a sheet that cannot be read: nothing to confirm

    chosen = await previewed(api, await upload(api, sysmex_sheet(), "preview=true&profile=Sysmex"))
    assert chosen["profile"] == "Sysmex"
    preview = chosen["preview"]
    assert (preview["error"], preview["reports_total"], preview["rejected"]) == (None, 1, [])
    assert preview["unknown_columns"] == ["Ward"] and preview["suggested_profile"] is None


async def test_an_upload_naming_an_unknown_profile_is_refused(api: TestClient[Any, Any]) -> None:
    form = FormData()
    form.add_field("file", sheet_of(demo_rows(1)), filename="export.xlsx")
    response = await api.post(f"{PREFIX}/batches?profile=Nope", data=form)
    assert response.status == 400
    assert "no sheet profile named 'Nope'" in (await response.json())["detail"]


@pytest.mark.usefixtures("ingest")
async def test_an_api_upload_without_preview_goes_straight_to_ingest_with_its_profile(
    api: TestClient[Any, Any], db: Database, settings: Any
) -> None:
    await SheetProfiles(db).save(settings.lab_id, SYSMEX, "alice")
    batch_id = await upload(api, sysmex_sheet(), "profile=Sysmex")

    async def ingested() -> dict[str, Any] | None:
        return await db.batches.find_one({"_id": batch_id, "status": "ingested"})

    batch = await eventually(ingested)
    assert (batch["profile"], batch["reports_created"], batch.get("preview")) == ("Sysmex", 1, None)


async def test_someone_elses_preview_cannot_be_confirmed_by_an_uploader(
    client: TestClient[Any, Any], db: Database
) -> None:
    await bearer(client, db, "olga", Role.UPLOADER)
    batch_id = await upload(client, sheet_of(demo_rows(1)))
    await bearer(client, db, "uma", Role.UPLOADER)
    response = await client.post(f"{PREFIX}/batches/{batch_id}/confirm")
    assert response.status == 404


async def test_a_lost_preview_request_is_sent_again_as_a_preview_never_as_a_real_run(
    make_resources: Callable[[str], Resources], db: Database, amqp_url: str
) -> None:
    long_ago = utcnow() - timedelta(minutes=40)
    batch = {"lab_id": "demo-lab", "filename": "a.xlsx", "file_id": "file-1",
             "uploaded_by": "ann", "uploaded_at": long_ago, "correlation_id": "c"}  # fmt: skip
    await db.batches.insert_many(
        [
            {**batch, "_id": "b-waiting", "status": "previewing"},
            {**batch, "_id": "b-shown", "status": "previewing", "preview": {"reports_total": 1}},
            {**batch, "_id": "b-dropped", "status": "discarded"},
        ]
    )
    resources = make_resources("gateway")
    await resources.start()
    try:
        assert await Redriver(resources).tick(utcnow()) == 1
    finally:
        await resources.broker.stop()
        await resources.close()
    [ingest] = await drain(amqp_url, "ingest.batch")
    assert (ingest["batch_id"], ingest["preview"]) == ("b-waiting", True)
