"""The admin API's report templates (`api_routes.OPERATIONS` names them `templates.<method>`):
upload a version (checked by the lint), list names and versions, make a version active.
The same store and audit actions (`template.uploaded`, `template.activated`) as the pages."""

from __future__ import annotations

import asyncio

from aiohttp import web

from services.gateway import logic
from services.gateway.admin_api_models import (
    TemplateList,
    TemplateSummary,
    TemplateVersionView,
)
from services.gateway.web import USER, client_detail, json_error, ok
from services.infra.audit import Audit, staff
from services.infra.service import Resources
from services.infra.template_lint import lint
from services.infra.templates import TemplateError, TemplateStore, name_problem

MAX_TEMPLATE_BYTES = 10 * 1024 * 1024


class TemplateApi:
    def __init__(self, resources: Resources) -> None:
        self._store = TemplateStore(resources.db)
        self._audit = Audit(resources.db)

    async def list(self, request: web.Request) -> web.StreamResponse:
        items = []
        for row in await self._store.names():
            versions = await self._store.versions(row["name"])
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
        name = str(form.get("name", "")).strip().lower()
        field = form.get("file")
        if problem := name_problem(name):
            return json_error(400, "invalid", problem)
        if not isinstance(field, web.FileField) or not field.filename:
            return json_error(400, "invalid", "The multipart field `file` holds no .docx.")
        data = await asyncio.to_thread(field.file.read)
        if len(data) > MAX_TEMPLATE_BYTES:
            return json_error(400, "invalid", "A template may be at most 10 MB.")
        result = await asyncio.to_thread(lint, data)
        document = await self._store.add_version(
            name,
            data,
            filename=logic.clean_filename(field.filename),
            uploaded_by=request[USER],
            lint=result.as_dict(),
        )
        detail = {**client_detail(request), "template": name, "version": document["version"]}
        await self._audit.write(staff(request[USER]), "template.uploaded", None, detail)
        return ok(TemplateVersionView.model_validate(document), status=201)

    async def activate(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        try:
            version = int(request.match_info["version"])
        except ValueError:
            return json_error(404, "not_found", "A version is a number.")
        try:
            document = await self._store.activate(name, version)
        except TemplateError as error:
            missing = await self._store.get(name, version) is None
            status, kind = (404, "not_found") if missing else (409, "conflict")
            return json_error(status, kind, str(error))
        detail = {**client_detail(request), "template": name, "version": version}
        await self._audit.write(staff(request[USER]), "template.activated", None, detail)
        return ok(TemplateVersionView.model_validate(document))
