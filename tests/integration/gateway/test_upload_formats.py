"""Every spreadsheet kind ingest reads can be uploaded through the gateway's door too: an
.xls, .ods and .xlsm saved by LibreOffice Calc each make the same three reports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient

from services.gateway.accounts_store import ApiTokens, create_user
from services.gateway.api import PREFIX
from services.infra.database import Database
from services.infra.service import Resources
from services.ingest.main import create_app as create_ingest
from tests.integration.ingest.test_sheet_formats import save_in_every_format
from tests.support import PASSWORD, eventually


@pytest.fixture
async def ingest(make_resources: Callable[[str], Resources]) -> AsyncIterator[None]:
    async with create_ingest(make_resources("ingest")):
        yield


@pytest.fixture(scope="module")
def saved_as(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return save_in_every_format(tmp_path_factory.mktemp("formats"))


@pytest.mark.usefixtures("ingest")
@pytest.mark.parametrize("extension", ["xls", "ods", "xlsm"])
async def test_a_lab_sheet_saved_in_another_spreadsheet_format_is_uploaded_and_read(
    client: TestClient[Any, Any], db: Database, saved_as: dict[str, bytes], extension: str
) -> None:
    await create_user(db, "admin", PASSWORD)
    _, token = await ApiTokens(db).create("admin", "tests")
    form = FormData()
    form.add_field("file", saved_as[extension], filename=f"results.{extension}")
    response = await client.post(
        f"{PREFIX}/batches", data=form, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status == 202, await response.text()
    batch_id = (await response.json())["batch_id"]

    async def ingested() -> dict[str, Any] | None:
        batch = await db.batches.find_one({"_id": batch_id})
        return batch if batch and batch["status"] == "ingested" else None

    batch = await eventually(ingested)
    assert (batch["reports_created"], batch["rejected_rows"]) == (3, [])
    assert batch["filename"] == f"results.{extension}"
