"""The dead-letter page and its admin API: what RabbitMQ gave up on, per queue, with why
and for which report, and the decisions staff take (`dead_letters.DeadLetterActions`)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from contracts import topology
from services.gateway.actions import ActionRefused
from services.gateway.admin_api_models import (
    DeadLetterDecision,
    DeadLetterList,
    DeadLetterView,
    ReplayAll,
    ReplayAllResult,
)
from services.gateway.dead_letters import DeadLetterActions, setup_dead_letter_keeper
from services.gateway.login import form_text
from services.gateway.queries import page_number
from services.gateway.web import ROLE, USER, body, json_error, ok, render
from services.infra.dead_letters import DeadLetters, DeadLetterState
from services.infra.service import Resources

DECISIONS = ("replay", "discard")
STATES = tuple(state.value for state in DeadLetterState)


def _filters(request: web.Request) -> tuple[str | None, str]:
    queue = request.query.get("queue") or None
    state = request.query.get("state") or DeadLetterState.DEAD.value
    if state not in STATES:
        raise ActionRefused(400, f"`state` is one of {', '.join(STATES)}.")
    return queue, state


async def _decide(
    actions: DeadLetterActions, request: web.Request, action: str, reason: str
) -> None:
    letter_id, user, role = request.match_info["letter_id"], request[USER], request[ROLE]
    if action == "replay":
        await actions.replay(letter_id, user, role)
    else:
        await actions.discard(letter_id, user, role, reason)


class DeadLetterPages:
    def __init__(self, resources: Resources) -> None:
        self._store = DeadLetters(resources.db)
        self._actions = DeadLetterActions(resources)

    async def list(self, request: web.Request, **context: Any) -> web.Response:
        status = context.pop("status", 200)
        try:
            queue, state = _filters(request)
        except ActionRefused as refused:
            raise web.HTTPBadRequest(text=refused.reason) from None
        page = page_number(request.query) or 1
        rows, more = await self._store.page(queue, state, page)

        def link(number: int) -> str:
            return "/dead-letters?" + urlencode(
                {"queue": queue or "", "state": state, "page": number}
            )

        return render(
            request,
            "dead_letters.html",
            {
                "rows": rows,
                "counts": await self._store.counts(),
                "queues": [q.name for q in topology.QUEUES],
                "queue": queue or "",
                "state": state,
                "states": STATES,
                "page": page,
                "prev_link": link(page - 1) if page > 1 else None,
                "next_link": link(page + 1) if more else None,
                "message": "",
                "error": "",
                **context,
            },
            status=status,
        )

    async def decide(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        action = request.match_info["action"]
        try:
            await _decide(self._actions, request, action, form_text(form, "reason"))
        except ActionRefused as refused:
            return await self.list(request, error=refused.reason, status=refused.status)
        done = "sent back to its queue" if action == "replay" else "discarded"
        return await self.list(request, message=f"The dead letter was {done}.")

    async def replay_all(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        queue = form_text(form, "queue") or None
        replayed = await self._actions.replay_all(queue, request[USER], request[ROLE])
        return await self.list(request, message=f"{replayed} dead letter(s) sent back.")


class DeadLetterApi:
    """The admin API's dead-letter operations (`api_routes.OPERATIONS`: `dead_letters.<method>`)."""

    def __init__(self, resources: Resources) -> None:
        self._store = DeadLetters(resources.db)
        self._actions = DeadLetterActions(resources)

    async def list(self, request: web.Request) -> web.StreamResponse:
        page = page_number(request.query)
        if page is None:
            return json_error(400, "invalid", "`page` must be a whole number.")
        queue, state = _filters(request)
        rows, more = await self._store.page(queue, state, page)
        return ok(
            DeadLetterList(
                items=[DeadLetterView.model_validate(row) for row in rows],
                counts=await self._store.counts(),
                page=page,
                next_page=page + 1 if more else None,
            )
        )

    async def decide(self, request: web.Request) -> web.StreamResponse:
        wanted: DeadLetterDecision = await body(request, DeadLetterDecision)
        await _decide(self._actions, request, request.match_info["action"], wanted.reason)
        letter = await self._store.get(request.match_info["letter_id"])
        return ok(DeadLetterView.model_validate(letter))

    async def replay_all(self, request: web.Request) -> web.StreamResponse:
        wanted: ReplayAll = await body(request, ReplayAll)
        replayed = await self._actions.replay_all(wanted.queue, request[USER], request[ROLE])
        return ok(ReplayAllResult(replayed=replayed))


def setup_dead_letters(app: web.Application, resources: Resources) -> None:
    setup_dead_letter_keeper(resources)
    pages = DeadLetterPages(resources)
    app.router.add_get("/dead-letters", pages.list)
    app.router.add_post("/dead-letters/replay-all", pages.replay_all)
    app.router.add_post(
        f"/dead-letters/{{letter_id}}/{{action:{'|'.join(DECISIONS)}}}", pages.decide
    )
