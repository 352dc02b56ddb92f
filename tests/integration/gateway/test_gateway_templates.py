"""Admins manage report templates in the dashboard: each upload is a new checked version, a
refused one names the part and the reason, only a passing version can be made active, and
the render stage then uses that version (recording it on the report)."""

from __future__ import annotations

import io
from typing import Any

from aiohttp import FormData
from aiohttp.test_utils import TestClient
from docx import Document

from services.infra.database import Database
from services.infra.template_context import sample_context
from services.infra.template_rules import TemplateRuleStore
from services.infra.templates import TemplateStore
from services.render.adapters import Templates
from tests.support import csrf_from
from tests.template_files import lab_template, with_parts


def docx_text(data: bytes) -> str:
    return "\n".join(p.text for p in Document(io.BytesIO(data)).paragraphs)


async def upload(client: TestClient[Any, Any], name: str, data: bytes) -> str:
    form = FormData()
    form.add_field("csrf_token", await csrf_from(client, "/templates"))
    form.add_field("name", name)
    form.add_field("file", data, filename="letterhead.docx")
    response = await client.post("/templates", data=form)
    assert response.status == 200, await response.text()
    return await response.text()


async def test_a_hostile_upload_is_kept_as_a_version_that_names_its_problem_and_cannot_be_active(
    admin: TestClient[Any, Any], db: Database
) -> None:
    page = await upload(
        admin, "letterhead", with_parts(lab_template(), **{"word/vbaProject.bin": b"x"})
    )
    assert "word/vbaProject.bin" in page and "macros (VBA)" in page
    assert "Make version 1 active" not in page
    csrf = await csrf_from(admin, "/templates/letterhead")
    refused = await admin.post("/templates/letterhead/1/activate", data={"csrf_token": csrf})
    assert refused.status == 409
    stored = await db.templates.find_one({"_id": "letterhead:1"})
    assert stored is not None and stored["active"] is False


async def test_a_lab_template_passes_is_activated_and_the_renderer_uses_that_version(
    admin: TestClient[Any, Any], db: Database
) -> None:
    await upload(admin, "letterhead", lab_template())
    page = await upload(admin, "letterhead", lab_template(logo=False))
    assert "Version 2" in page and "Check passed" in page
    csrf = await csrf_from(admin, "/templates/letterhead")
    response = await admin.post("/templates/letterhead/1/activate", data={"csrf_token": csrf})
    assert response.status == 200 and "active" in await response.text()

    templates = Templates(store=TemplateStore(db))
    assert (await templates.get("letterhead")).version == 1
    assert (await templates.get("letterhead", 2)).version == 2  # re-rendering an older report
    assert (await templates.get("default")).version == 0  # the shipped fallback
    audit = await db.audit.find_one({"action": "template.activated"})
    assert audit is not None and audit["detail"]["version"] == 1


async def test_a_lab_placeholder_mapped_to_the_patients_name_passes_activates_and_renders_it(
    admin: TestClient[Any, Any], db: Database
) -> None:
    page = await upload(admin, "letterhead", lab_template(body="Dear {{ patient_name }},"))
    assert "patient_name" in page and "Make version 1 active" not in page
    assert 'name="map:patient_name"' in page and '<option value="patient.name">' in page
    csrf = await csrf_from(admin, "/templates/letterhead")
    form = {"csrf_token": csrf, "map:patient_name": "patient.name", "text:patient_name": ""}
    mapped = await admin.post("/templates/letterhead/1/mapping", data=form)
    page = await mapped.text()
    assert mapped.status == 200 and "Check passed" in page
    assert '<option value="patient.name" selected>' in page
    activated = await admin.post("/templates/letterhead/1/activate", data={"csrf_token": csrf})
    assert activated.status == 200

    renderer = await Templates(store=TemplateStore(db)).get("letterhead")
    assert renderer.mapping == {"patient_name": {"field": "patient.name"}}
    context = sample_context()
    context["patient"]["name"] = "Grace Hopper"
    text = docx_text(renderer.render_sync(context))
    assert "Dear Grace Hopper," in text
    audit = await db.audit.find_one({"action": "template.mapped"})
    assert audit is not None
    assert audit["detail"]["mapping"] == {"patient_name": {"field": "patient.name"}}


async def test_choice_rules_are_edited_on_their_page_saved_in_order_and_audited(
    admin: TestClient[Any, Any], db: Database
) -> None:
    await upload(admin, "diabetes", lab_template())
    await upload(admin, "francais", lab_template())
    assert "Which template a report uses" in await (await admin.get("/templates")).text()
    csrf = await csrf_from(admin, "/template-rules")
    form = {"csrf_token": csrf, "test_0": "HbA1c", "language_0": "", "template_0": "diabetes"}
    form |= {"test_1": "", "language_1": "fr", "template_1": "francais", "template_2": ""}
    not_active = await admin.post("/template-rules", data=form)
    text = await not_active.text()
    assert not_active.status == 400 and "Rule 1: template &#39;diabetes&#39; has no active" in text
    assert 'value="HbA1c"' in text  # what was typed stays on the page
    for name in ("diabetes", "francais"):
        await TemplateStore(db).activate(name, 1)
    saved = await admin.post("/template-rules", data=form)
    assert saved.status == 200 and 'value="HbA1c"' in await saved.text()
    assert await TemplateRuleStore(db).get() == [
        {"test": "HbA1c", "language": "", "template": "diabetes"},
        {"test": "", "language": "fr", "template": "francais"},
    ]
    refused = await admin.post("/template-rules", data={"csrf_token": csrf, "template_0": "A B"})
    assert refused.status == 400 and "Rule 1" in await refused.text()
    audit = await db.audit.find_one({"action": "template.rules_saved"})
    assert audit is not None and audit["detail"]["rules"] == 2
