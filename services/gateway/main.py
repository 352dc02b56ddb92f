"""The gateway: aiohttp app with the admin dashboard, patient portal, webhooks, health, metrics.

Run as `python -m services.gateway.main` (or `resultflow gateway`). It also consumes
`ReportStatusChanged` (queue `gateway.report-status`) to push live batch progress.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from contracts.v1 import ReportStatusChanged
from services.gateway import logic
from services.gateway.admin import AdminHandlers, auth_middleware
from services.gateway.handlers import BatchEvents, GatewayHandlers
from services.gateway.portal import PortalHandlers
from services.gateway.web import (
    SESSION,
    USER,
    RedactingAccessLogger,
    csp_nonce,
    format_datetime,
    security_headers,
)
from services.gateway.webhooks import WebhookHandlers
from services.infra.consumer import subscribe
from services.infra.service import Resources

HERE = Path(__file__).resolve().parent
RESOURCES = web.AppKey("resources", Resources)


def create_app(resources: Resources | None = None) -> web.Application:
    resources = resources or Resources.create("gateway")
    settings = resources.settings
    events = BatchEvents()
    gateway = GatewayHandlers(resources, events)
    admin = AdminHandlers(resources, events)
    portal = PortalHandlers(resources)
    webhooks = WebhookHandlers(resources)

    subscribe(resources, ReportStatusChanged, on_give_up=gateway.give_up)(
        gateway.report_status_changed
    )

    app = web.Application(
        middlewares=[auth_middleware(admin.sessions)],
        # The multipart envelope around a maximum-size sheet still has to fit.
        client_max_size=logic.MAX_UPLOAD_BYTES + 256 * 1024,
    )
    app[RESOURCES] = resources

    async def page_context(request: web.Request) -> dict[str, Any]:
        session = request.get(SESSION)
        return {
            "user": request.get(USER),
            "csrf_token": session["csrf_token"] if session else "",
            "csp_nonce": csp_nonce(request),
            "lab_name": settings.lab_name,
            "outbox_enabled": settings.sms_provider == "outbox",
        }

    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        context_processors=[page_context],
        filters={"datetime": format_datetime},
    )
    app.on_response_prepare.append(security_headers(https=settings.cookie_secure))

    r = app.router
    r.add_get("/login", admin.login_form)
    r.add_post("/login", admin.login)
    r.add_post("/logout", admin.logout)
    r.add_get("/", admin.dashboard)
    r.add_get("/upload", admin.upload_form)
    r.add_post("/upload", admin.upload)
    r.add_get("/batches/{batch_id}", admin.batch)
    r.add_get("/batches/{batch_id}/counts", admin.batch_counts)
    r.add_get("/batches/{batch_id}/events", admin.batch_events)
    r.add_get("/reports", admin.reports)
    r.add_get("/reports/{report_id}", admin.report)
    r.add_get("/reports/{report_id}/report.pdf", admin.report_pdf)
    r.add_get("/outbox", admin.outbox)
    r.add_get("/r/{token}", portal.check_form)
    r.add_post("/r/{token}", portal.check)
    r.add_get("/r/{token}/report", portal.report_page)
    r.add_get("/r/{token}/report.pdf", portal.report_pdf)
    r.add_post("/webhooks/twilio/status", webhooks.twilio_status)
    r.add_get("/healthz", gateway.healthz)
    r.add_get("/metrics", gateway.metrics)
    r.add_static("/static/", HERE / "static")

    async def start(_: web.Application) -> None:
        await resources.start()
        await resources.broker.start()  # after the subscriber above is registered

    async def stop_streams(_: web.Application) -> None:
        events.close()

    async def close(_: web.Application) -> None:
        await resources.broker.stop()
        await resources.close()

    app.on_startup.append(start)
    app.on_shutdown.append(stop_streams)
    app.on_cleanup.append(close)
    return app


def main() -> None:
    resources = Resources.create("gateway")
    settings = resources.settings
    web.run_app(
        create_app(resources),
        host=settings.gateway_host,
        port=settings.gateway_port,
        access_log_class=RedactingAccessLogger,
        print=None,
    )


if __name__ == "__main__":
    main()
