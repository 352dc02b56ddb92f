"""The admin API's report templates (`api_routes.OPERATIONS` names them `templates.<method>`):
list names and versions, upload a version (checked by the lint), map a version's own
placeholders, preview it as a PDF, make a version active, read and replace the choice rules.
The same `TemplateActions` (and audit) as the dashboard's pages and the command line."""

from __future__ import annotations

import asyncio

from aiohttp import web

from services.gateway import logic
from services.gateway.admin_api_models import (
    TemplateList,
    TemplateMapping,
    TemplateRules,
    TemplateSummary,
    TemplateVersionView,
)
from services.gateway.template_actions import TemplateActions
from services.gateway.web import USER, body, client_detail, json_error, ok
from services.infra.audit import staff
from services.infra.service import Resources


def _version(request: web.Request) -> tuple[str, int]:
    try:
        return request.match_info["name"], int(request.match_info["version"])
    except ValueError:
        raise web.HTTPNotFound(
            text='{"error": "not_found", "detail": "A version is a number."}',
            content_type="application/json",
        ) from None


class TemplateApi:
    def __init__(self, resources: Resources) -> None:
        self._actions = TemplateActions(resources.db)

    async def list(self, request: web.Request) -> web.StreamResponse:
        items = []
        for row in await self._actions.store.names():
            versions = await self._actions.store.versions(row["name"])
            items.append(
                TemplateSummary(
                    name=row["name"],
                    active=row.get("active"),
                    versions=[v["version"] for v in versions],
                    lint_ok={str(v["version"]): bool(v["lint"].get("ok")) for v in versions},
                )
            )
        return ok(TemplateList(items=items))

    async def upload(self, request: web.Request) -> web.StreamResponse:
        if not request.content_type.startswith("multipart/"):
            return json_error(400, "invalid", "Send multipart/form-data: `name` and `file`.")
        form = await request.post()
        field = form.get("file")
        if not isinstance(field, web.FileField) or not field.filename:
            return json_error(400, "invalid", "The multipart field `file` holds no .docx.")
        document = await self._actions.upload(
            str(form.get("name", "")).strip().lower(),
            logic.clean_filename(field.filename),
            await asyncio.to_thread(field.file.read),
            staff(request[USER]),
            request[USER],
            client_detail(request),
        )
        return ok(TemplateVersionView.model_validate(document), status=201)

    async def map_fields(self, request: web.Request) -> web.StreamResponse:
        name, version = _version(request)
        wanted: TemplateMapping = await body(request, TemplateMapping)
        document = await self._actions.map_fields(
            name, version, wanted.mapping, staff(request[USER]), client_detail(request)
        )
        return ok(TemplateVersionView.model_validate(document))

    async def activate(self, request: web.Request) -> web.StreamResponse:
        name, version = _version(request)
        document = await self._actions.activate(
            name, version, staff(request[USER]), client_detail(request)
        )
        return ok(TemplateVersionView.model_validate(document))

    async def preview(self, request: web.Request) -> web.StreamResponse:
        name, version = _version(request)
        pdf = await self._actions.preview(name, version)
        return web.Response(
            body=pdf,
            headers={
                "Content-Type": "application/pdf",
                "Content-Disposition": f'attachment; filename="{name}-{version}-preview.pdf"',
            },
        )

    async def get_template_rules(self, request: web.Request) -> web.StreamResponse:
        return ok(TemplateRules.model_validate({"rules": await self._actions.rules.get()}))

    async def put_template_rules(self, request: web.Request) -> web.StreamResponse:
        wanted: TemplateRules = await body(request, TemplateRules)
        rules = wanted.stored()
        saved = await self._actions.save_rules(rules, staff(request[USER]), client_detail(request))
        return ok(TemplateRules.model_validate({"rules": saved}))
