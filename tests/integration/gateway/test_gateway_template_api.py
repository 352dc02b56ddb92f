"""The admin API's report templates: the same capability as the dashboard's templates page,
for scripts: upload a version (answered with its check), list them, make one active (only a
version that passed), admins only, audited like the page."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient

from services.gateway.accounts_store import ApiTokens, create_user
from services.gateway.api import PREFIX
from services.gateway.permissions import Role
from services.infra.database import Database
from tests.support import PASSWORD
from tests.template_files import lab_template, with_parts


@pytest.fixture
async def api(client: TestClient[Any, Any], db: Database) -> TestClient[Any, Any]:
    """The client with a bearer token of user `admin` on every request."""
    await create_user(db, "admin", PASSWORD)
    _, token = await ApiTokens(db).create("admin", "tests")
    client.session.headers["Authorization"] = f"Bearer {token}"
    return client


async def post_template(client: TestClient[Any, Any], name: str, data: bytes) -> Any:
    form = FormData()
    form.add_field("name", name)
    form.add_field("file", data, filename="letterhead.docx")
    return await client.post(f"{PREFIX}/templates", data=form)


async def test_an_uploaded_template_is_answered_with_its_version_and_check_and_listed(
    api: TestClient[Any, Any], db: Database
) -> None:
    first = await post_template(api, "letterhead", lab_template())
    assert first.status == 201, await first.text()
    made = await first.json()
    assert made["name"] == "letterhead" and made["version"] == 1 and made["lint"]["ok"]
    second = await (await post_template(api, "letterhead", lab_template(body="{{ x }}"))).json()
    assert second["version"] == 2 and not second["lint"]["ok"] and second["lint"]["unknown"]

    listed = await (await api.get(f"{PREFIX}/templates")).json()
    assert listed["items"] == [
        {"name": "letterhead", "active": None, "versions": [2, 1],
         "lint_ok": {"2": False, "1": True}},
    ]  # fmt: skip
    audit = await db.audit.find_one({"action": "template.uploaded"})
    assert audit is not None and audit["actor"] == "admin:admin"


async def test_only_a_version_that_passed_its_check_can_be_made_active_over_the_api(
    api: TestClient[Any, Any], db: Database
) -> None:
    await post_template(api, "letterhead", lab_template())
    await post_template(
        api, "letterhead", with_parts(lab_template(), **{"word/vbaProject.bin": b"x"})
    )
    refused = await api.post(f"{PREFIX}/templates/letterhead/2/activate")
    assert refused.status == 409 and (await refused.json())["error"] == "conflict"
    missing = await api.post(f"{PREFIX}/templates/letterhead/9/activate")
    assert missing.status == 404
    done = await api.post(f"{PREFIX}/templates/letterhead/1/activate")
    assert done.status == 200 and (await done.json())["active"] is True
    listed = await (await api.get(f"{PREFIX}/templates")).json()
    assert listed["items"][0]["active"] == 1
    audit = await db.audit.find_one({"action": "template.activated"})
    assert audit is not None and audit["detail"]["version"] == 1


async def test_template_operations_are_for_admins_only_and_described_in_openapi(
    client: TestClient[Any, Any], db: Database
) -> None:
    await create_user(db, "ravi", PASSWORD, role=Role.REVIEWER)
    _, token = await ApiTokens(db).create("ravi", "tests")
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get(f"{PREFIX}/templates", headers=headers)).status == 403
    form = FormData()
    form.add_field("name", "letterhead")
    form.add_field("file", lab_template(), filename="letterhead.docx")
    refused = await client.post(f"{PREFIX}/templates", data=form, headers=headers)
    assert refused.status == 403
    spec = await (await client.get(f"{PREFIX}/openapi.json")).json()
    upload = spec["paths"][f"{PREFIX}/templates"]["post"]
    schema = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert schema["required"] == ["file", "name"]
    assert "TemplateVersionView" in spec["components"]["schemas"]


async def test_a_lab_placeholder_is_mapped_over_the_api_and_the_version_then_passes(
    api: TestClient[Any, Any], db: Database
) -> None:
    await post_template(api, "letterhead", lab_template(body="{{ patient_name }} {{ motto }}"))
    path = f"{PREFIX}/templates/letterhead/1/mapping"
    unknown = await api.put(path, json={"mapping": {"nobody": {"text": "x"}}})
    assert unknown.status == 400 and "nobody" in (await unknown.json())["detail"]
    bad_field = await api.put(path, json={"mapping": {"motto": {"field": "patient.secret"}}})
    assert bad_field.status == 400 and "patient.secret" in (await bad_field.json())["detail"]

    mapping = {"patient_name": {"field": "patient.name"}, "motto": {"text": "Care first"}}
    mapped = await api.put(path, json={"mapping": mapping})
    assert mapped.status == 200, await mapped.text()
    view = await mapped.json()
    assert view["lint"]["ok"] and view["lint"]["unknown"] == [] and view["mapping"] == mapping
    audit = await db.audit.find_one({"action": "template.mapped"})
    assert audit is not None and audit["detail"]["mapping"] == mapping
    missing = await api.put(f"{PREFIX}/templates/letterhead/7/mapping", json={"mapping": {}})
    assert missing.status == 404


async def test_a_version_is_previewed_over_the_api_as_a_pdf_only_once_it_passed(
    api: TestClient[Any, Any],
) -> None:
    await post_template(api, "letterhead", lab_template())
    await post_template(api, "letterhead", lab_template(body="{{ unknown_thing }}"))
    refused = await api.get(f"{PREFIX}/templates/letterhead/2/preview.pdf")
    assert refused.status == 409 and (await refused.json())["error"] == "conflict"
    preview = await api.get(f"{PREFIX}/templates/letterhead/1/preview.pdf")
    assert preview.status == 200, await preview.text()
    assert preview.content_type == "application/pdf"
    assert (await preview.read()).startswith(b"%PDF-")


async def test_choice_rules_are_read_and_replaced_over_the_api_naming_only_usable_templates(
    api: TestClient[Any, Any], db: Database
) -> None:
    assert await (await api.get(f"{PREFIX}/template-rules")).json() == {"rules": []}
    await post_template(api, "diabetes", lab_template())
    rules = [{"test": "HbA1c", "language": "", "template": "diabetes"}]
    not_active = await api.put(f"{PREFIX}/template-rules", json={"rules": rules})
    assert not_active.status == 400
    assert "'diabetes' has no active version" in (await not_active.json())["detail"]

    await api.post(f"{PREFIX}/templates/diabetes/1/activate")
    rules.append({"test": "", "language": "fr", "template": "default"})
    saved = await api.put(f"{PREFIX}/template-rules", json={"rules": rules})
    assert saved.status == 200, await saved.text()
    assert await (await api.get(f"{PREFIX}/template-rules")).json() == {"rules": rules}
    typo = await api.put(f"{PREFIX}/template-rules", json={"rules": [{"tempate": "x"}]})
    assert typo.status == 400
    audit = await db.audit.find_one({"action": "template.rules_saved"})
    assert audit is not None and audit["detail"]["rules"] == 2
