"""Reviewers' pages: the release queue (reports waiting for a person or for a hold to end),
the forms that act on one report (release, withdraw, retry, resend, new link) or a whole batch
(retry failed, release held, cancel), and the lab's release rules. The actions themselves are
in `actions` and `batch_actions`, shared with the admin API."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from services.gateway import review_logic
from services.gateway.actions import ActionRefused, StaffActions
from services.gateway.batch_actions import BatchActions
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
        self._batch_actions = BatchActions(resources)
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
        """An action from the report page; back to it, or a page saying why it failed."""
        report_id, action = request.match_info["report_id"], request.match_info["action"]
        form = await request.post()
        user, client, reason = request[USER], client_detail(request), _text(form, "reason")
        try:
            if action == "release":
                await self._actions.release(report_id, user, reason, client)
            elif action == "withdraw":
                await self._actions.withdraw(report_id, user, reason, client)
            elif action == "retry":
                await self._actions.retry(report_id, user, client)
            else:  # resend, reissue-link: a new SMS; the form's request id makes it once
                await self._actions.text_again(
                    report_id,
                    user,
                    client,
                    request_id=_text(form, "request_id"),
                    phone=_text(form, "phone"),
                    why="resend" if action == "resend" else "link_reissued",
                )
        except ActionRefused as error:
            return self._refused(
                request, "The report was not changed", error, f"/reports/{report_id}"
            )
        return redirect(f"/reports/{report_id}")

    async def batch_action(self, request: web.Request) -> web.StreamResponse:
        """Retry every failed report, release every held one, or cancel the batch."""
        batch_id, action = request.match_info["batch_id"], request.match_info["action"]
        form = await request.post()
        user, client, reason = request[USER], client_detail(request), _text(form, "reason")
        try:
            if action == "retry-failed":
                outcome = await self._batch_actions.retry_failed(batch_id, user, client)
            elif action == "release-held":
                outcome = await self._batch_actions.release_held(batch_id, user, reason, client)
            else:
                outcome = await self._batch_actions.cancel(batch_id, user, reason, client)
        except ActionRefused as error:
            return self._refused(
                request, "The batch was not changed", error, f"/batches/{batch_id}"
            )
        return render(
            request,
            "batch_action.html",
            {"action": action, "batch_id": batch_id, "outcome": outcome},
        )

    @staticmethod
    def _refused(request: web.Request, title: str, error: ActionRefused, back: str) -> web.Response:
        return render(
            request,
            "error.html",
            {"title": title, "message": error.reason, "back": back},
            status=error.status,
        )

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
    r.add_post(
        "/reports/{report_id}/{action:release|withdraw|retry|resend|reissue-link}",
        handlers.report_action,
    )
    r.add_post(
        "/batches/{batch_id}/{action:retry-failed|release-held|cancel}", handlers.batch_action
    )
    r.add_get("/release-rules", handlers.rules_page)
    r.add_post("/release-rules", handlers.save_rules)
