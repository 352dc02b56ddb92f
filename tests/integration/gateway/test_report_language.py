"""Staff see a report's patient language, and the note when the language given was not one
we send in, on the report page and in the API."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from services.gateway.accounts_store import ApiTokens
from services.gateway.api import PREFIX
from services.infra.database import Database
from tests.support import report_document

NOTE = "Language &#39;xx&#39; is not one we send in; sent in English."


async def test_the_report_page_shows_the_language_and_the_fallback_note(
    admin: TestClient[Any, Any], db: Database
) -> None:
    unknown = report_document(status="converted", patient={"language": "xx"})
    french = report_document(status="converted", patient={"language": "fr-CA"})
    await db.reports.insert_many([unknown, french])

    page = await (await admin.get(f"/reports/{unknown['_id']}")).text()
    other = await (await admin.get(f"/reports/{french['_id']}")).text()

    assert "<dt>Language</dt><dd>English" in page
    assert f'<p class="notice" id="language-note">{NOTE}</p>' in page
    assert "<dt>Language</dt><dd>French" in other and "language-note" not in other


async def test_the_api_report_view_carries_the_language_and_the_note(
    admin: TestClient[Any, Any], db: Database
) -> None:
    report = report_document(status="converted", patient={"language": "xx"})
    await db.reports.insert_one(report)
    _, token = await ApiTokens(db).create("admin", "tests")

    response = await admin.get(
        f"{PREFIX}/reports/{report['_id']}", headers={"Authorization": f"Bearer {token}"}
    )

    view = await response.json()
    assert response.status == 200
    assert view["language"] == "en"
    assert view["language_note"] == "Language 'xx' is not one we send in; sent in English."
