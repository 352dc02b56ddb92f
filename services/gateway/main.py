"""The gateway: one aiohttp app for every audience, each in its own module.

| module     | audience                                                          |
|------------|-------------------------------------------------------------------|
| `accounts` | lab staff signing in: users, sessions, lockout, the auth middleware |
| `admin`    | lab staff's pages: dashboard, upload, batches, reports, outbox      |
| `review`   | reviewers: the release queue, release / withdraw, release rules     |
| `api`      | the same for scripts: the admin JSON API `/api/v1` (OpenAPI)       |
| `live`     | the batch page's live progress (consumes `ReportStatusChanged`)     |
| `portal`   | patients: the SMS link, the second check, the report                |
| `webhooks` | SMS providers' delivery receipts                                   |
| `ops`      | operators: health and metrics                                      |
| `audit_pages` | admins: the audit trail, its filters and CSV export               |

Run as `resultflow gateway` (or `python -m services.gateway.main`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from services.gateway import logic
from services.gateway.accounts import setup_accounts
from services.gateway.admin import setup_admin
from services.gateway.api import setup_api
from services.gateway.audit_pages import setup_audit
from services.gateway.batch_preview import setup_batch_preview
from services.gateway.dead_letter_pages import setup_dead_letters
from services.gateway.fhir import setup_fhir
from services.gateway.glance import cached_glance, setup_glance
from services.gateway.live import setup_live
from services.gateway.ops import setup_ops
from services.gateway.portal import setup_portal
from services.gateway.profile_pages import setup_profile_pages
from services.gateway.redriver import setup_redriver
from services.gateway.review import setup_review
from services.gateway.template_actions import TemplateActions
from services.gateway.template_pages import setup_templates
from services.gateway.template_rule_pages import setup_template_rules
from services.gateway.users import setup_users
from services.gateway.verify import setup_verify
from services.gateway.web import RedactingAccessLogger, body_limits, setup_pages
from services.gateway.webhooks import setup_webhooks
from services.infra.service import Resources


def create_app(resources: Resources | None = None) -> web.Application:
    resources = resources or Resources.create("gateway")
    # The multipart envelope around a maximum-size sheet still has to fit.
    app = web.Application(client_max_size=logic.MAX_UPLOAD_BYTES + 256 * 1024)
    app.middlewares.append(body_limits)  # before anything reads a body
    # Accounts next: its middleware must know the user before a page's context is built.
    setup_accounts(app, resources)
    setup_pages(app, resources.settings)
    glance = cached_glance(resources)  # the dashboard's and its refresh's
    setup_admin(app, resources, glance)
    setup_batch_preview(app, resources)
    setup_profile_pages(app, resources)
    setup_review(app, resources)
    setup_users(app, resources)
    setup_dead_letters(app, resources)
    setup_audit(app, resources)
    setup_api(app, resources)
    setup_live(app, resources)
    setup_portal(app, resources)
    setup_verify(app, resources)
    setup_glance(app, glance)
    template_actions = TemplateActions(resources.db)
    setup_templates(app, template_actions)
    setup_template_rules(app, template_actions)
    setup_webhooks(app, resources)
    setup_fhir(app, resources)
    setup_ops(app, resources)

    async def connected(_: web.Application) -> AsyncIterator[None]:
        await resources.start()
        await resources.broker.start()  # after every subscriber above is registered
        yield
        await resources.broker.stop()
        await resources.close()

    app.cleanup_ctx.append(connected)
    setup_redriver(app, resources)  # after `connected`: it needs the broker while it runs
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
