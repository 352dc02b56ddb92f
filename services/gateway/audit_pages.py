"""The audit trail for admins: `/audit` (filters, newest first, a page at a time) and
`/audit.csv` (every entry the filters match, safe to open in a spreadsheet). The same list
is `GET /api/v1/audit` (`api`) and `resultflow audit list` (`cli_audit`)."""

from __future__ import annotations

import csv
import io
from urllib.parse import urlencode

from aiohttp import web

from services.gateway.api_models import AuditEntryView, AuditList
from services.gateway.queries import page_number
from services.gateway.web import USER, client_detail, json_error, render
from services.infra.audit import Audit, staff
from services.infra.audit_search import CSV_COLUMNS, AuditFilter, csv_row, entry_view
from services.infra.documents import AuditOutcome
from services.infra.service import Resources

CSV_FLUSH_ROWS = 500  # rows written to the client at a time
AUDIT_FILTERS = ("actor", "action", "object", "outcome", "from", "to")  # query parameters


def _csv_lines(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode()


class AuditHandlers:
    def __init__(self, resources: Resources) -> None:
        self._audit = Audit(resources.db)

    async def page(self, request: web.Request) -> web.StreamResponse:
        filters = AuditFilter.from_query(request.query)
        page = page_number(request.query) or 1
        entries, has_next = await self._audit.page(filters, page)

        def page_link(number: int) -> str:
            return "/audit?" + urlencode({**filters.params(), "page": number})

        return render(
            request,
            "audit.html",
            {
                "entries": [entry_view(entry) for entry in entries],
                "filters": filters,
                "outcomes": list(AuditOutcome),
                "csv_link": "/audit.csv?" + urlencode(filters.params()),
                "page": page,
                "prev_link": page_link(page - 1) if page > 1 else None,
                "next_link": page_link(page + 1) if has_next else None,
            },
        )

    async def csv_export(self, request: web.Request) -> web.StreamResponse:
        """Every matching entry, newest first, written out as it is read."""
        filters = AuditFilter.from_query(request.query)
        # Who took a copy of the trail, and of which part, is in the trail.
        await self._audit.write(
            staff(request[USER]),
            "audit.exported",
            None,
            {"filters": filters.params(), **client_detail(request)},
        )
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": 'attachment; filename="audit.csv"',
            }
        )
        await response.prepare(request)
        rows: list[list[str]] = [list(CSV_COLUMNS)]
        async for entry in self._audit.matching(filters):
            rows.append(csv_row(entry))
            if len(rows) >= CSV_FLUSH_ROWS:
                await response.write(_csv_lines(rows))
                rows = []
        await response.write(_csv_lines(rows))
        await response.write_eof()
        return response


async def audit_list(audit: Audit, request: web.Request) -> web.Response:
    """`GET /api/v1/audit` (registered with the API's operations): a page of entries."""
    page = page_number(request.query)
    if page is None:
        return json_error(400, "invalid", "`page` must be a whole number.")
    entries, more = await audit.page(AuditFilter.from_query(request.query), page)
    items = [AuditEntryView.model_validate(entry_view(entry)) for entry in entries]
    answer = AuditList(items=items, page=page, next_page=page + 1 if more else None)
    return web.json_response(text=answer.model_dump_json())


def setup_audit(app: web.Application, resources: Resources) -> None:
    handlers = AuditHandlers(resources)
    app.router.add_get("/audit", handlers.page)
    app.router.add_get("/audit.csv", handlers.csv_export)
