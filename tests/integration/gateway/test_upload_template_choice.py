"""A template chosen at upload is recorded on every report of the batch (render then uses it
instead of asking the lab's choice rules, which it asks only for `default`), also when the
upload is previewed first; only a template with an active version can be chosen."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import date
from typing import Any

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient

from devtools.demo import demo_rows, sheet_of
from services.gateway.accounts_store import ApiTokens, create_user
from services.gateway.api import PREFIX
from services.infra.database import Database
from services.infra.service import Resources
from services.infra.templates import TemplateStore
from services.ingest.main import create_app as create_ingest
from tests.support import PASSWORD, csrf_from, eventually
from tests.template_files import lab_template


@pytest.fixture
async def ingest(make_resources: Callable[[str], Resources]) -> AsyncIterator[None]:
    async with create_ingest(make_resources("ingest")):
        yield


async def an_active_template(db: Database, name: str) -> None:
    store = TemplateStore(db)
    await store.add_version(name, lab_template(), filename=f"{name}.docx", uploaded_by="admin",
                            lint={"ok": True, "placeholders": []})  # fmt: skip
    await store.activate(name, 1)


async def upload(client: TestClient[Any, Any], query: str) -> Any:
    form = FormData()
    form.add_field("file", sheet_of(demo_rows(2, sample_date=date(2026, 11, 20))),
                   filename="export.xlsx")  # fmt: skip
    return await client.post(f"{PREFIX}/batches?{query}", data=form)


@pytest.mark.usefixtures("ingest")
async def test_every_report_of_a_batch_uses_the_template_chosen_at_upload(
    client: TestClient[Any, Any], db: Database
) -> None:
    await create_user(db, "admin", PASSWORD)
    _, token = await ApiTokens(db).create("admin", "tests")
    client.session.headers["Authorization"] = f"Bearer {token}"
    await an_active_template(db, "letterhead")
    await TemplateStore(db).add_version("draft", lab_template(), filename="d.docx",
                                        uploaded_by="admin", lint={"ok": True})  # fmt: skip

    refused = await upload(client, "template=draft")
    assert refused.status == 400
    assert "'draft' has no active version" in (await refused.json())["detail"]

    made = await upload(client, "template=letterhead&preview=true")
    assert made.status == 202, await made.text()
    batch_id = (await made.json())["batch_id"]

    async def previewed() -> bool:
        return bool((await db.batches.find_one({"_id": batch_id}) or {}).get("preview"))

    await eventually(previewed)
    assert (await client.post(f"{PREFIX}/batches/{batch_id}/confirm", json={})).status == 200

    async def reports() -> list[dict[str, Any]] | None:
        found = await db.reports.find({"batch_id": batch_id}).to_list()
        return found if len(found) == 2 else None

    assert {r["template"] for r in await eventually(reports)} == {"letterhead"}
    audit = await db.audit.find_one({"action": "batch.uploaded"})
    assert audit is not None and audit["detail"]["template"] == "letterhead"


async def test_the_upload_page_offers_only_templates_with_an_active_version(
    admin: TestClient[Any, Any], db: Database
) -> None:
    await an_active_template(db, "letterhead")
    await TemplateStore(db).add_version("draft", lab_template(), filename="d.docx",
                                        uploaded_by="admin", lint={"ok": True})  # fmt: skip
    page = await (await admin.get("/upload")).text()
    assert '<option value="letterhead">letterhead</option>' in page
    assert 'value="draft"' not in page
    assert await csrf_from(admin, "/upload")
