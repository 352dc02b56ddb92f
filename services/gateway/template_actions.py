"""What staff do with report templates, whichever door they come through (the dashboard's
pages, the admin API, the `resultflow templates` command): upload a version (checked by the
lint), map a version's own placeholders, make a version active, preview it, and save the
choice rules. Each change is audited as `template.*`; a refusal is an ActionRefused whose
text a lab administrator can act on."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from services.gateway.actions import ActionRefused
from services.infra.audit import Audit
from services.infra.database import Database
from services.infra.template_context import MAPPABLE, own_placeholders
from services.infra.template_lint import lint
from services.infra.template_rules import MAX_RULES, TemplateRule, TemplateRuleStore
from services.infra.templates import TemplateDocument, TemplateError, TemplateStore, name_problem

MAX_TEMPLATE_BYTES = 10 * 1024 * 1024
MAX_MAPPED_TEXT = 500
PREVIEW_SECONDS = 120


def mapping_problem(mapping: dict[str, dict[str, str]], placeholders: list[str]) -> str | None:
    """Why `mapping` cannot be saved for a version using `placeholders`; None when it can."""
    own = own_placeholders(placeholders)
    for name, target in mapping.items():
        if name not in own:
            return f"{name!r} is not one of this template's own placeholders ({', '.join(own)})."
        if set(target) == {"field"}:
            if target["field"] not in MAPPABLE:
                return f"{name!r}: {target['field']!r} is not a report field one can map to."
        elif set(target) == {"text"}:
            if len(target["text"]) > MAX_MAPPED_TEXT:
                return f"{name!r}: a fixed text is at most {MAX_MAPPED_TEXT} characters."
        else:
            return f'{name!r}: map it to {{"field": ...}} or {{"text": ...}}.'
    return None


class TemplateActions:
    def __init__(self, db: Database) -> None:
        self.store = TemplateStore(db)
        self.rules = TemplateRuleStore(db)
        self._audit = Audit(db)

    async def version(self, name: str, version: int) -> TemplateDocument:
        document = await self.store.get(name, version)
        if document is None:
            raise ActionRefused(404, f"There is no version {version} of template {name!r}.")
        return document

    async def upload(
        self,
        name: str,
        filename: str,
        data: bytes,
        actor: str,
        username: str,
        client: dict[str, Any],
    ) -> TemplateDocument:
        """`data` as the next version of `name`, with the lint's answer (a version that fails
        the check is kept, to be fixed by mapping or replaced; it cannot be made active)."""
        if problem := name_problem(name):
            raise ActionRefused(400, problem)
        if not data:
            raise ActionRefused(400, "Choose a Word (.docx) file to upload.")
        if len(data) > MAX_TEMPLATE_BYTES:
            raise ActionRefused(400, "A template may be at most 10 MB.")
        result = await asyncio.to_thread(lint, data)
        document = await self.store.add_version(
            name, data, filename=filename, uploaded_by=username, lint=result.as_dict()
        )
        detail = {**client, "template": name, "version": document["version"]}
        await self._audit.write(actor, "template.uploaded", None, detail)
        return document

    async def map_fields(
        self,
        name: str,
        version: int,
        mapping: dict[str, dict[str, str]],
        actor: str,
        client: dict[str, Any],
    ) -> TemplateDocument:
        """Save a version's mapping of its own placeholders, and check it again with it."""
        document = await self.version(name, version)
        if problem := mapping_problem(mapping, document["lint"].get("placeholders", [])):
            raise ActionRefused(400, problem)
        result = await asyncio.to_thread(lint, await self.store.data(document), mapping)
        await self.store.set_mapping(name, version, mapping, result.as_dict())
        detail = {**client, "template": name, "version": version, "mapping": mapping}
        await self._audit.write(actor, "template.mapped", None, detail)
        return await self.version(name, version)

    async def activate(
        self, name: str, version: int, actor: str, client: dict[str, Any]
    ) -> TemplateDocument:
        await self.version(name, version)
        try:
            document = await self.store.activate(name, version)
        except TemplateError as error:
            raise ActionRefused(409, str(error)) from None
        detail = {**client, "template": name, "version": version}
        await self._audit.write(actor, "template.activated", None, detail)
        return document

    async def preview(self, name: str, version: int) -> bytes:
        """The version rendered with sample data and converted to PDF by a short-lived
        `resultflow templates preview` (LibreOffice is the convert service's, not ours)."""
        document = await self.version(name, version)
        if not document["lint"].get("ok"):
            raise ActionRefused(409, "This version did not pass the check: no preview.")
        data = await self.store.data(document)
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
                raise ActionRefused(503, "The preview took too long.") from None
            if process.returncode != 0 or not target.exists():
                raise ActionRefused(503, "The preview could not be made.")
            return target.read_bytes()

    async def save_rules(
        self, rules: list[TemplateRule], actor: str, client: dict[str, Any]
    ) -> list[TemplateRule]:
        """Replace the choice rules; each must name a template new reports can use (one with
        an active version, or the shipped `default`)."""
        if len(rules) > MAX_RULES:
            raise ActionRefused(400, f"At most {MAX_RULES} rules.")
        cleaned: list[TemplateRule] = []
        for number, rule in enumerate(rules, start=1):
            template = rule["template"].strip().lower()
            if problem := name_problem(template):
                raise ActionRefused(400, f"Rule {number}: {problem}")
            if template != "default" and await self.store.active(template) is None:
                raise ActionRefused(
                    400, f"Rule {number}: template {template!r} has no active version yet."
                )
            test, language = rule["test"].strip()[:100], rule["language"].strip()[:12]
            cleaned.append(TemplateRule(test=test, language=language, template=template))
        await self.rules.put(cleaned, by=actor)
        await self._audit.write(
            actor, "template.rules_saved", None, {**client, "rules": len(cleaned)}
        )
        return cleaned
