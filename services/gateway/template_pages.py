"""The dashboard's report templates (admins): upload a .docx under a name (each upload is a
new version, checked by the template lint), see each version's check, map its own
placeholders, preview it with sample data as a PDF, and choose the active version. The work
is `template_actions.TemplateActions`, shared with the admin API and the command line."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from aiohttp import web

from services.gateway import logic
from services.gateway.actions import ActionRefused
from services.gateway.template_actions import TemplateActions
from services.gateway.web import USER, client_detail, render
from services.infra.audit import staff
from services.infra.template_context import MAPPABLE, mapping_from_form, own_placeholders

T = TypeVar("T")


class TemplatePages:
    def __init__(self, actions: TemplateActions) -> None:
        self._actions = actions

    async def index(self, request: web.Request, error: str = "") -> web.StreamResponse:
        names = await self._actions.store.names()
        return render(
            request, "templates.html", {"names": names, "error": error}, 400 if error else 200
        )

    async def upload(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        name = str(form.get("name", "")).strip().lower()
        field = form.get("file")
        data, filename = b"", ""
        if isinstance(field, web.FileField) and field.filename:
            data = await asyncio.to_thread(field.file.read)
            filename = logic.clean_filename(field.filename)
        try:
            await self._actions.upload(
                name, filename, data, staff(request[USER]), request[USER], client_detail(request)
            )
        except ActionRefused as refused:
            return await self.index(request, refused.reason)
        raise web.HTTPSeeOther(f"/templates/{name}")

    async def versions(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        versions = await self._actions.store.versions(name)
        if not versions:
            raise web.HTTPNotFound(text="No template of that name.")
        own = {v["version"]: own_placeholders(v["lint"].get("placeholders", [])) for v in versions}
        context = {"name": name, "versions": versions, "own": own, "fields": MAPPABLE}
        return render(request, "template.html", context)

    async def map_fields(self, request: web.Request) -> web.StreamResponse:
        name, version = request.match_info["name"], _version(request)
        document = await _or_http_error(self._actions.version(name, version))
        mapping = mapping_from_form(await request.post(), document["lint"]["placeholders"])
        await _or_http_error(
            self._actions.map_fields(
                name, version, mapping, staff(request[USER]), client_detail(request)
            )
        )
        raise web.HTTPSeeOther(f"/templates/{name}#v{version}")

    async def activate(self, request: web.Request) -> web.StreamResponse:
        name, version = request.match_info["name"], _version(request)
        await _or_http_error(
            self._actions.activate(name, version, staff(request[USER]), client_detail(request))
        )
        raise web.HTTPSeeOther(f"/templates/{name}")

    async def preview(self, request: web.Request) -> web.StreamResponse:
        name, version = request.match_info["name"], _version(request)
        pdf = await _or_http_error(self._actions.preview(name, version))
        return web.Response(
            body=pdf,
            headers={
                "Content-Type": "application/pdf",
                "Content-Disposition": 'inline; filename="template-preview.pdf"',
            },
        )


HTTP_ERRORS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    404: web.HTTPNotFound,
    409: web.HTTPConflict,
    503: web.HTTPServiceUnavailable,
}


async def _or_http_error(action: Awaitable[T]) -> T:
    try:
        return await action
    except ActionRefused as refused:
        raise HTTP_ERRORS.get(refused.status, web.HTTPBadRequest)(text=refused.reason) from None


def _version(request: web.Request) -> int:
    try:
        return int(request.match_info["version"])
    except ValueError:
        raise web.HTTPNotFound() from None


def setup_templates(app: web.Application, actions: TemplateActions) -> None:
    pages = TemplatePages(actions)
    r = app.router
    r.add_get("/templates", pages.index)
    r.add_post("/templates", pages.upload)
    r.add_get("/templates/{name}", pages.versions)
    r.add_post("/templates/{name}/{version}/activate", pages.activate)
    r.add_get("/templates/{name}/{version}/preview.pdf", pages.preview)
    r.add_post("/templates/{name}/{version}/mapping", pages.map_fields)
