"""Which module writes each shared collection (docs/data-model.md): every other module only
reads it. `database_access` grants each service's MongoDB user exactly the writes of the
owner modules it runs, and a test checks that both agree."""

from __future__ import annotations

OWNERS: dict[str, str] = {
    "reports": "services.infra.reports",
    "access_codes": "services.infra.access_codes",
    "release_rules": "services.infra.release_rules",
    "batches": "services.infra.batches",
    "audit": "services.infra.audit",
    "notifications": "services.notify.adapters",
    "outbox": "services.notify.providers",
    "message_outbox": "services.infra.outbox",  # store-then-publish, not SMS
    "rejected_messages": "services.ingest.adapters",
    "users": "services.gateway.accounts_store",
    "sessions": "services.gateway.sessions_store",
    "login_throttle": "services.gateway.sessions_store",
    "api_tokens": "services.gateway.accounts_store",
    "portal_sessions": "services.gateway.portal",
    "sms_opt_outs": "services.infra.opt_outs",
    "dead_letters": "services.infra.dead_letters",
    "templates": "services.infra.templates",
    "template_rules": "services.infra.template_rules",
    "sheet_profiles": "services.infra.sheet_profiles",
}
