"""The dashboard's report templates (admins): upload a .docx under a name (each upload is a
new version, checked by the template lint), see each version's check, preview it with sample
data as a PDF, and choose the active version. Audited as `template.*`."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

import structlog
from aiohttp import web

from services.gateway import logic
from services.gateway.web import USER, client_detail, render
from services.infra.audit import Audit, staff
from services.infra.template_context import MAPPABLE, mapping_from_form, own_placeholders
from services.infra.template_lint import lint
from services.infra.templates import TemplateError, TemplateStore, name_problem

log = structlog.get_logger()

PREVIEW_SECONDS = 120
MAX_TEMPLATE_BYTES = 10 * 1024 * 1024


class TemplatePages:
    def __init__(self, store: TemplateStore, audit: Audit) -> None:
        self._store = store
        self._audit = audit

    async def index(self, request: web.Request, error: str = "") -> web.StreamResponse:
        names = await self._store.names()
        return render(
            request, "templates.html", {"names": names, "error": error}, 400 if error else 200
        )

    async def upload(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        name = str(form.get("name", "")).strip().lower()
        field = form.get("file")
        if problem := name_problem(name):
            return await self.index(request, problem)
        if not isinstance(field, web.FileField) or not field.filename:
            return await self.index(request, "Choose a Word (.docx) file to upload.")
        data = await asyncio.to_thread(field.file.read)
        if len(data) > MAX_TEMPLATE_BYTES:
            return await self.index(request, "A template may be at most 10 MB.")
        result = await asyncio.to_thread(lint, data)
        filename = logic.clean_filename(field.filename)
        document = await self._store.add_version(
            name, data, filename=filename, uploaded_by=request[USER], lint=result.as_dict()
        )
        detail = {**client_detail(request), "template": name, "version": document["version"]}
        await self._audit.write(staff(request[USER]), "template.uploaded", None, detail)
        raise web.HTTPSeeOther(f"/templates/{name}")

    async def versions(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        versions = await self._store.versions(name)
        if not versions:
            raise web.HTTPNotFound(text="No template of that name.")
        own = {v["version"]: own_placeholders(v["lint"].get("placeholders", [])) for v in versions}
        context = {"name": name, "versions": versions, "own": own, "fields": MAPPABLE}
        return render(request, "template.html", context)

    async def map_fields(self, request: web.Request) -> web.StreamResponse:
        """Save a version's mapping of its own placeholders, and check it again with it."""
        name, version = request.match_info["name"], _version(request)
        document = await self._store.get(name, version)
        if document is None:
            raise web.HTTPNotFound(text="No such template version.")
        mapping = mapping_from_form(await request.post(), document["lint"]["placeholders"])
        data = await self._store.data(document)
        result = await asyncio.to_thread(lint, data, mapping)
        await self._store.set_mapping(name, version, mapping, result.as_dict())
        detail = {**client_detail(request), "template": name, "version": version}
        detail["mapping"] = mapping
        await self._audit.write(staff(request[USER]), "template.mapped", None, detail)
        raise web.HTTPSeeOther(f"/templates/{name}#v{version}")

    async def activate(self, request: web.Request) -> web.StreamResponse:
        name, version = request.match_info["name"], _version(request)
        try:
            await self._store.activate(name, version)
        except TemplateError as error:
            raise web.HTTPBadRequest(text=str(error)) from None
        detail = {**client_detail(request), "template": name, "version": version}
        await self._audit.write(staff(request[USER]), "template.activated", None, detail)
        raise web.HTTPSeeOther(f"/templates/{name}")

    async def preview(self, request: web.Request) -> web.StreamResponse:
        """The version rendered with sample data and converted to PDF by a short-lived
        `resultflow templates preview` (LibreOffice is the convert service's, not ours)."""
        document = await self._store.get(request.match_info["name"], _version(request))
        if document is None:
            raise web.HTTPNotFound(text="No such template version.")
        if not document["lint"].get("ok"):
            raise web.HTTPConflict(text="This version did not pass the check: no preview.")
        data = await self._store.data(document)
        with tempfile.TemporaryDirectory() as folder:
            source, target = Path(folder) / "t.docx", Path(folder) / "preview.pdf"
            source.write_bytes(data)
            mapping = Path(folder) / "mapping.json"
            mapping.write_text(json.dumps(document["mapping"]))
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "services.cli_templates", str(source), str(target),
                str(mapping),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            try:
                await asyncio.wait_for(process.wait(), PREVIEW_SECONDS)
            except TimeoutError:
                process.kill()
                raise web.HTTPServiceUnavailable(text="The preview took too long.") from None
            if process.returncode != 0 or not target.exists():
                raise web.HTTPServiceUnavailable(text="The preview could not be made.")
            pdf = target.read_bytes()
        return web.Response(
            body=pdf,
            headers={
                "Content-Type": "application/pdf",
                "Content-Disposition": 'inline; filename="template-preview.pdf"',
            },
        )


def _version(request: web.Request) -> int:
    try:
        return int(request.match_info["version"])
    except ValueError:
        raise web.HTTPNotFound() from None


def setup_templates(app: web.Application, store: TemplateStore, audit: Audit) -> None:
    pages = TemplatePages(store, audit)
    r = app.router
    r.add_get("/templates", pages.index)
    r.add_post("/templates", pages.upload)
    r.add_get("/templates/{name}", pages.versions)
    r.add_post("/templates/{name}/{version}/activate", pages.activate)
    r.add_get("/templates/{name}/{version}/preview.pdf", pages.preview)
    r.add_post("/templates/{name}/{version}/mapping", pages.map_fields)
