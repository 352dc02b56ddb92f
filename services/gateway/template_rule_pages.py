"""The dashboard's template choice rules (admins): which template a report uses, by a
result's test (or panel) and the patient's language; the first rule that matches wins and
`default` is the fallback. Saved through `template_actions.TemplateActions` (audited as
`template.rules_saved`), as the admin API and the command line do."""

from __future__ import annotations

from aiohttp import web

from services.gateway.actions import ActionRefused
from services.gateway.template_actions import TemplateActions
from services.gateway.web import USER, client_detail, render
from services.infra.audit import staff
from services.infra.template_rules import MAX_RULES, TemplateRule

BLANK_ROWS = 3


class TemplateRulePages:
    def __init__(self, actions: TemplateActions) -> None:
        self._actions = actions

    async def show(
        self, request: web.Request, error: str = "", rules: list[TemplateRule] | None = None
    ) -> web.StreamResponse:
        rules = await self._actions.rules.get() if rules is None else rules
        blank = TemplateRule(test="", language="", template="")
        context = {"rules": [*rules, *[blank] * BLANK_ROWS], "error": error}
        return render(request, "template_rules.html", context, 400 if error else 200)

    async def save(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        rules = [
            TemplateRule(
                test=str(form.get(f"test_{index}", "")),
                language=str(form.get(f"language_{index}", "")),
                template=template,
            )
            for index in range(MAX_RULES)
            if (template := str(form.get(f"template_{index}", "")).strip())
        ]
        try:
            await self._actions.save_rules(rules, staff(request[USER]), client_detail(request))
        except ActionRefused as refused:
            return await self.show(request, refused.reason, rules)
        raise web.HTTPSeeOther("/template-rules")


def setup_template_rules(app: web.Application, actions: TemplateActions) -> None:
    pages = TemplateRulePages(actions)
    app.router.add_get("/template-rules", pages.show)
    app.router.add_post("/template-rules", pages.save)
