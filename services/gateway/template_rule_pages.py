"""The dashboard's template choice rules (admins): which template a report uses, by a
result's test (or panel) and the patient's language; the first rule that matches wins and
`default` is the fallback. Audited as `template.rules_saved`."""

from __future__ import annotations

from aiohttp import web

from services.gateway.web import USER, client_detail, render
from services.infra.audit import Audit, staff
from services.infra.template_rules import MAX_RULES, TemplateRule, TemplateRuleStore
from services.infra.templates import name_problem

BLANK_ROWS = 3


class TemplateRulePages:
    def __init__(self, store: TemplateRuleStore, audit: Audit) -> None:
        self._store = store
        self._audit = audit

    async def show(self, request: web.Request, error: str = "") -> web.StreamResponse:
        rules = await self._store.get()
        blank = TemplateRule(test="", language="", template="")
        context = {"rules": [*rules, *[blank] * BLANK_ROWS], "error": error}
        return render(request, "template_rules.html", context, 400 if error else 200)

    async def save(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        rules: list[TemplateRule] = []
        for index in range(MAX_RULES):
            template = str(form.get(f"template_{index}", "")).strip().lower()
            test = str(form.get(f"test_{index}", "")).strip()[:100]
            language = str(form.get(f"language_{index}", "")).strip()[:12]
            if not template:
                continue
            if problem := name_problem(template):
                return await self.show(request, f"Rule {index + 1}: {problem}")
            rules.append(TemplateRule(test=test, language=language, template=template))
        actor = staff(request[USER])
        await self._store.put(rules, by=actor)
        detail = {**client_detail(request), "rules": len(rules)}
        await self._audit.write(actor, "template.rules_saved", None, detail)
        raise web.HTTPSeeOther("/template-rules")


def setup_template_rules(app: web.Application, store: TemplateRuleStore, audit: Audit) -> None:
    pages = TemplateRulePages(store, audit)
    app.router.add_get("/template-rules", pages.show)
    app.router.add_post("/template-rules", pages.save)
