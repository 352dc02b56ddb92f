"""A previewed upload's decision: confirm (ingest makes its reports from the same stored
file, exactly once) or discard (nothing is ever made). Shared by the batch page's buttons
(`/batches/{id}/confirm|discard`), the admin API (`preview.confirm_batch|discard_batch`) and
`resultflow batches confirm|discard`; audited as `batch.confirmed` / `batch.discarded`. Only
whoever may follow the batch may decide."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from contracts.v1 import Message
from services.gateway.actions import ActionRefused
from services.gateway.api_models import BatchView
from services.gateway.queries import BatchQueries
from services.gateway.uploads import ingest_command
from services.gateway.web import USER, client_detail, ok, redirect, render, sees_batch
from services.infra.audit import Audit, staff
from services.infra.batches import Batches
from services.infra.broker import PUBLISH_WAIT_SECONDS
from services.infra.documents import BatchDocument, BatchStatus
from services.infra.service import Resources

if TYPE_CHECKING:
    from pymongo.asynchronous.client_session import AsyncClientSession

log = structlog.get_logger()
Sees = Callable[[BatchDocument], bool]  # whether the one deciding may follow this batch


class BatchPreviews:
    def __init__(self, resources: Resources) -> None:
        self._resources = resources
        self._batches = Batches(resources.db)
        self._audit = Audit(resources.db)

    async def _batch(self, batch_id: str, sees: Sees) -> BatchDocument:
        batch = await self._batches.get(batch_id)
        if batch is None or not sees(batch):
            raise ActionRefused(404, f"There is no batch {batch_id}.")
        return batch

    async def confirm(
        self, batch_id: str, user: str, client: dict[str, Any], sees: Sees = lambda b: True
    ) -> BatchDocument:
        """Make the previewed batch's reports. Confirming it again changes nothing."""
        batch = await self._batch(batch_id, sees)
        if _decided(batch, "confirmed"):
            return batch
        if batch["status"] != BatchStatus.PREVIEWING:
            raise ActionRefused(409, f"The batch is {batch['status']}: there is no preview.")
        preview = batch.get("preview")
        if preview is None:
            raise ActionRefused(409, "The sheet is still being read; confirm once it is shown.")
        if preview.get("error"):
            raise ActionRefused(409, "The sheet cannot be read; discard it and upload again.")

        async def record(session: AsyncClientSession) -> tuple[BatchDocument | None, list[Message]]:
            decided = await self._batches.decide_preview(
                batch["_id"], user, confirm=True, session=session
            )
            # The confirmation and the real run's IngestBatch are stored together.
            return decided, [ingest_command(batch, preview=False)] if decided else []

        decided = await self._resources.outbox.commit(record, publish_wait=PUBLISH_WAIT_SECONDS)
        if decided is None:  # decided meanwhile by someone else
            return await self._settled(batch["_id"], "confirmed")
        detail = {**client, "reports": preview.get("reports_total", 0)}
        await self._audit.write(staff(user), "batch.confirmed", None, detail, object=batch_id)
        return decided

    async def discard(
        self, batch_id: str, user: str, client: dict[str, Any], sees: Sees = lambda b: True
    ) -> BatchDocument:
        """Drop the previewed batch: nothing of it is ever made. Discarding again: no change."""
        batch = await self._batch(batch_id, sees)
        if _decided(batch, "discarded"):
            return batch
        if batch["status"] != BatchStatus.PREVIEWING:
            raise ActionRefused(409, f"The batch is {batch['status']}: there is no preview.")
        decided = await self._batches.decide_preview(batch["_id"], user, confirm=False)
        if decided is None:
            return await self._settled(batch["_id"], "discarded")
        await self._audit.write(staff(user), "batch.discarded", None, client, object=batch_id)
        return decided

    async def _settled(self, batch_id: str, wanted: str) -> BatchDocument:
        batch = await self._batches.get(batch_id)
        if batch is not None and _decided(batch, wanted):
            return batch
        raise ActionRefused(409, "The preview was decided otherwise meanwhile.")


def _decided(batch: BatchDocument, how: str) -> bool:
    decision = batch.get("confirmation")
    return decision is not None and decision["reason"] == how


async def decide(previews: BatchPreviews, request: web.Request, how: str) -> BatchDocument:
    """A page's or the API's confirm or discard, as the signed-in user."""
    act = previews.confirm if how == "confirm" else previews.discard
    return await act(
        request.match_info["batch_id"],
        request[USER],
        client_detail(request),
        lambda batch: sees_batch(request, batch),
    )


class PreviewApi:
    """`POST /api/v1/batches/{batch_id}/confirm|discard`: the batch as it is then."""

    def __init__(self, resources: Resources) -> None:
        self._previews = BatchPreviews(resources)
        self._queries = BatchQueries(resources.db)

    async def confirm_batch(self, request: web.Request) -> web.StreamResponse:
        return await self._view(await decide(self._previews, request, "confirm"))

    async def discard_batch(self, request: web.Request) -> web.StreamResponse:
        return await self._view(await decide(self._previews, request, "discard"))

    async def _view(self, batch: BatchDocument) -> web.StreamResponse:
        counts = await self._queries.status_counts([batch["_id"]])
        return ok(BatchView.of(batch, counts[batch["_id"]]))


def setup_batch_preview(app: web.Application, resources: Resources) -> None:
    previews = BatchPreviews(resources)

    async def page(request: web.Request) -> web.StreamResponse:
        how = "confirm" if request.path.endswith("/confirm") else "discard"
        try:
            batch = await decide(previews, request, how)
        except ActionRefused as error:
            back = f"/batches/{request.match_info['batch_id']}"
            context = {"title": "The batch was not changed", "message": error.reason}
            return render(request, "error.html", {**context, "back": back}, status=error.status)
        return redirect(f"/batches/{batch['_id']}")

    app.router.add_post("/batches/{batch_id}/confirm", page)
    app.router.add_post("/batches/{batch_id}/discard", page)
