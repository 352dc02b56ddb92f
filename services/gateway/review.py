"""Reviewers' pages: the release queue (reports waiting for a person or for a hold to end),
releasing and withdrawing a report, and the lab's release rules. The actions themselves are
in `actions`, shared with the admin API."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from services.gateway import review_logic
from services.gateway.actions import ActionRefused, StaffActions
from services.gateway.queries import ReportQueries
from services.gateway.web import USER, client_detail, redirect, render
from services.infra.release_rules import ReleaseAction, ReleaseRules, ReleaseRuleStore
from services.infra.service import Resources

BLANK_RULE_ROWS = 3  # empty rows under the rules, for adding new ones


def _text(form: Any, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


class ReviewHandlers:
    def __init__(self, resources: Resources) -> None:
        self._lab_id = resources.settings.lab_id
        self._reports = ReportQueries(resources.db)
        self._actions = StaffActions(resources)
        self._rules = ReleaseRuleStore(resources.db)

    async def queue(self, request: web.Request) -> web.StreamResponse:
        return await self._queue_page(request)

    async def _queue_page(
        self, request: web.Request, message: str = "", status: int = 200
    ) -> web.Response:
        waiting = await self._reports.waiting()
        return render(
            request, "queue.html", {"reports": waiting, "message": message}, status=status
        )

    async def release_selected(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        ids = [value for value in form.getall("report_id", []) if isinstance(value, str)]
        if not ids:
            return await self._queue_page(request, "Tick the reports to release.", status=400)
        refused = []
        for report_id in dict.fromkeys(ids):
            try:
                await self._actions.release(
                    report_id, request[USER], _text(form, "reason"), client_detail(request)
                )
            except ActionRefused as error:
                refused.append(f"{report_id[:12]}: {error.reason}")
        if refused:
            released = len(set(ids)) - len(refused)
            note = f"{released} released; not released: " + "; ".join(refused)
            return await self._queue_page(request, note, status=409)
        return redirect("/queue")

    async def report_action(self, request: web.Request) -> web.StreamResponse:
        """A release or withdrawal from the report page; back to it, or the reason it failed."""
        report_id, action = request.match_info["report_id"], request.match_info["action"]
        form = await request.post()
        act = self._actions.release if action == "release" else self._actions.withdraw
        try:
            await act(report_id, request[USER], _text(form, "reason"), client_detail(request))
        except ActionRefused as error:
            return render(
                request,
                "error.html",
                {
                    "title": f"The report was not {action}{'d' if action == 'release' else 'n'}",
                    "message": error.reason,
                    "back": f"/reports/{report_id}",
                },
                status=error.status,
            )
        return redirect(f"/reports/{report_id}")

    async def rules_page(self, request: web.Request) -> web.StreamResponse:
        rules = await self._rules.get(self._lab_id)
        return self._rules_form(
            request, review_logic.rule_rows(rules.model_dump(mode="json")["rules"])
        )

    def _rules_form(
        self, request: web.Request, rows: list[dict[str, str]], errors: list[str] | None = None
    ) -> web.Response:
        blank = {"test": "", "flags": "", "action": "", "hours": "", "critical": "", "note": ""}
        return render(
            request,
            "release_rules.html",
            {
                "rows": [*rows, *([blank] * BLANK_RULE_ROWS)],
                "actions": list(ReleaseAction),
                "errors": errors or [],
            },
            status=400 if errors else 200,
        )

    async def save_rules(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        rows = review_logic.rule_rows_from_form(
            {k: v for k, v in form.items() if isinstance(v, str)}
        )
        try:
            rules = ReleaseRules.model_validate({"rules": review_logic.rules_from_rows(rows)})
        except ValidationError as error:
            problems = [
                f"Rule {int(e['loc'][1]) + 1}: {e['msg']}" if len(e["loc"]) > 1 else e["msg"]
                for e in error.errors()
            ]
            return self._rules_form(request, rows, problems)
        await self._actions.save_release_rules(rules, request[USER], client_detail(request))
        return redirect("/release-rules")


def setup_review(app: web.Application, resources: Resources) -> None:
    handlers = ReviewHandlers(resources)
    r = app.router
    r.add_get("/queue", handlers.queue)
    r.add_post("/queue/release", handlers.release_selected)
    r.add_post("/reports/{report_id}/{action:release|withdraw}", handlers.report_action)
    r.add_get("/release-rules", handlers.rules_page)
    r.add_post("/release-rules", handlers.save_rules)
