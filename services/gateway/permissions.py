"""Who may do what: the one permission table (role x action) behind every page and every API
route. Each route names its action in `ROUTE_ACTIONS`; the auth middleware (`accounts`) checks
it for every request, so a route missing from the table is refused to everyone signed in.

Pure: no database or web imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class Role(StrEnum):
    ADMIN = "admin"  # everything, and the lab's settings: users, release rules, templates
    REVIEWER = "reviewer"  # release, correct (upload corrected rows), withdraw, resend
    UPLOADER = "uploader"  # upload sheets and follow their own batches
    VIEWER = "viewer"  # read-only
    LIS = "lis"  # a laboratory system: API token only, intake only


class Action(StrEnum):
    PUBLIC = "public"  # no sign-in (login, portal, webhooks, health): their own checks
    SIGNED_IN = "signed_in"  # any member of staff with a session (log out)
    VIEW_BATCHES = "view_batches"  # uploaders: their own batches only
    VIEW_REPORTS = "view_reports"  # patient data: reports, PDFs, the queue, the SMS outbox
    UPLOAD = "upload"
    REVIEW = "review"  # release, withdraw, retry, resend, new link, batch actions
    MANAGE_RULES = "manage_rules"
    VIEW_AUDIT = "view_audit"  # the whole audit trail: admins only
    MANAGE_USERS = "manage_users"  # create, change role, disable, reset password or MFA
    MANAGE_TEMPLATES = "manage_templates"  # report templates: upload, check, preview, activate
    MANAGE_PROFILES = "manage_profiles"  # sheet mapping profiles: create, edit, delete


PERMISSIONS: Mapping[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset(Action) - {Action.PUBLIC},
    Role.REVIEWER: frozenset(
        {Action.SIGNED_IN, Action.VIEW_BATCHES, Action.VIEW_REPORTS, Action.UPLOAD, Action.REVIEW}
    ),
    Role.UPLOADER: frozenset({Action.SIGNED_IN, Action.VIEW_BATCHES, Action.UPLOAD}),
    Role.VIEWER: frozenset({Action.SIGNED_IN, Action.VIEW_BATCHES, Action.VIEW_REPORTS}),
    Role.LIS: frozenset({Action.UPLOAD}),
}
# Roles that sign in to the dashboard; the others use API tokens only.
SESSION_ROLES = frozenset({Role.ADMIN, Role.REVIEWER, Role.UPLOADER, Role.VIEWER})

A = "/api/v1"
# (method, route as aiohttp names it) -> the action it is. GET also covers HEAD.
ROUTE_ACTIONS: Mapping[tuple[str, str], Action] = {
    # accounts, the portal, providers, operations, static files: no staff session
    ("GET", "/login"): Action.PUBLIC,
    ("POST", "/login"): Action.PUBLIC,
    ("GET", "/r/{token}"): Action.PUBLIC,
    ("POST", "/r/{token}"): Action.PUBLIC,
    ("POST", "/r/{token}/code"): Action.PUBLIC,  # "Text me a code": the link is the key
    ("GET", "/portal/report"): Action.PUBLIC,
    ("GET", "/portal/report.pdf"): Action.PUBLIC,
    ("POST", "/webhooks/twilio/status"): Action.PUBLIC,
    ("POST", "/webhooks/twilio/inbound"): Action.PUBLIC,
    ("POST", "/webhooks/outbox/inbound"): Action.PUBLIC,
    # Africa's Talking's delivery reports: the secret in the path is their check
    ("POST", "/webhooks/africastalking/delivery/{secret}"): Action.PUBLIC,
    ("GET", "/healthz"): Action.PUBLIC,
    ("GET", "/v/{reference}"): Action.PUBLIC,  # report verification: no patient data
    ("POST", "/v/{reference}"): Action.PUBLIC,  # "was this exact file issued?" (writes nothing)
    # Readiness and metrics check the metrics token themselves (`ops`).
    ("GET", "/readyz"): Action.PUBLIC,
    ("GET", "/metrics"): Action.PUBLIC,
    ("GET", "/static"): Action.PUBLIC,
    ("GET", f"{A}/openapi.json"): Action.PUBLIC,
    ("GET", "/login/password"): Action.PUBLIC,  # the login's later steps: their own checks
    ("POST", "/login/password"): Action.PUBLIC,
    ("GET", "/login/mfa"): Action.PUBLIC,
    ("POST", "/login/mfa"): Action.PUBLIC,
    ("GET", "/login/mfa/setup"): Action.PUBLIC,
    ("POST", "/login/mfa/setup"): Action.PUBLIC,
    ("POST", "/login/recovery-codes"): Action.PUBLIC,
    ("POST", "/logout"): Action.SIGNED_IN,
    ("GET", "/account"): Action.SIGNED_IN,
    ("POST", "/account/password"): Action.SIGNED_IN,
    ("POST", "/account/sessions/end-others"): Action.SIGNED_IN,
    # batches
    ("GET", "/"): Action.VIEW_BATCHES,
    ("GET", "/batches/{batch_id}"): Action.VIEW_BATCHES,
    ("GET", "/batches/{batch_id}/counts"): Action.VIEW_BATCHES,
    ("GET", "/batches/{batch_id}/events"): Action.VIEW_BATCHES,
    ("GET", f"{A}/batches"): Action.VIEW_BATCHES,
    ("GET", f"{A}/batches/{{batch_id}}"): Action.VIEW_BATCHES,
    ("GET", "/upload"): Action.UPLOAD,
    ("POST", "/upload"): Action.UPLOAD,
    ("POST", f"{A}/batches"): Action.UPLOAD,
    # a previewed upload: confirmed or discarded by whoever may follow the batch
    ("POST", "/batches/{batch_id}/confirm"): Action.UPLOAD,
    ("POST", "/batches/{batch_id}/discard"): Action.UPLOAD,
    ("POST", f"{A}/batches/{{batch_id}}/confirm"): Action.UPLOAD,
    ("POST", f"{A}/batches/{{batch_id}}/discard"): Action.UPLOAD,
    ("GET", f"{A}/sheet-profiles"): Action.UPLOAD,  # to name one at upload
    ("GET", f"{A}/sheet-profiles/{{name}}"): Action.UPLOAD,
    ("POST", "/fhir/r4/Bundle"): Action.UPLOAD,  # FHIR R4 results from the LIS (`lis` role)
    # reports and what shows patient data
    ("GET", "/reports"): Action.VIEW_REPORTS,
    ("GET", "/glance"): Action.VIEW_REPORTS,
    ("GET", "/reports/{report_id}"): Action.VIEW_REPORTS,
    ("GET", "/reports/{report_id}/report.pdf"): Action.VIEW_REPORTS,
    ("GET", "/outbox"): Action.VIEW_REPORTS,
    ("GET", "/queue"): Action.VIEW_REPORTS,
    ("GET", "/dead-letters"): Action.VIEW_REPORTS,
    ("GET", f"{A}/dead-letters"): Action.VIEW_REPORTS,
    ("GET", "/release-rules"): Action.VIEW_REPORTS,
    ("GET", f"{A}/reports"): Action.VIEW_REPORTS,
    ("GET", f"{A}/glance"): Action.VIEW_REPORTS,
    ("GET", f"{A}/reports/{{report_id}}"): Action.VIEW_REPORTS,
    ("GET", f"{A}/release-rules"): Action.VIEW_REPORTS,
    # reviewing
    ("POST", "/queue/release"): Action.REVIEW,
    ("POST", "/dead-letters/replay-all"): Action.REVIEW,
    ("POST", "/dead-letters/{letter_id}/{action}"): Action.REVIEW,
    ("POST", f"{A}/dead-letters/replay-all"): Action.REVIEW,
    ("POST", f"{A}/dead-letters/{{letter_id}}/{{action}}"): Action.REVIEW,
    ("POST", "/reports/{report_id}/{action}"): Action.REVIEW,
    ("POST", "/batches/{batch_id}/{action}"): Action.REVIEW,
    ("POST", f"{A}/reports/release"): Action.REVIEW,
    ("POST", f"{A}/reports/{{report_id}}/release"): Action.REVIEW,
    ("POST", f"{A}/reports/{{report_id}}/withdraw"): Action.REVIEW,
    ("POST", f"{A}/reports/{{report_id}}/retry"): Action.REVIEW,
    ("POST", f"{A}/reports/{{report_id}}/resend"): Action.REVIEW,
    ("POST", f"{A}/reports/{{report_id}}/reissue-link"): Action.REVIEW,
    ("POST", f"{A}/batches/{{batch_id}}/{{action}}"): Action.REVIEW,
    # the lab's settings
    ("POST", "/release-rules"): Action.MANAGE_RULES,
    ("GET", "/templates"): Action.MANAGE_TEMPLATES,
    ("POST", "/templates"): Action.MANAGE_TEMPLATES,
    ("GET", "/templates/{name}"): Action.MANAGE_TEMPLATES,
    ("POST", "/templates/{name}/{version}/activate"): Action.MANAGE_TEMPLATES,
    ("GET", "/templates/{name}/{version}/preview.pdf"): Action.MANAGE_TEMPLATES,
    ("POST", "/templates/{name}/{version}/mapping"): Action.MANAGE_TEMPLATES,
    ("GET", "/template-rules"): Action.MANAGE_TEMPLATES,
    ("POST", "/template-rules"): Action.MANAGE_TEMPLATES,
    ("GET", f"{A}/templates"): Action.MANAGE_TEMPLATES,
    ("POST", f"{A}/templates"): Action.MANAGE_TEMPLATES,
    ("POST", f"{A}/templates/{{name}}/{{version}}/activate"): Action.MANAGE_TEMPLATES,
    ("PUT", f"{A}/templates/{{name}}/{{version}}/mapping"): Action.MANAGE_TEMPLATES,
    ("GET", f"{A}/templates/{{name}}/{{version}}/preview.pdf"): Action.MANAGE_TEMPLATES,
    ("GET", f"{A}/template-rules"): Action.MANAGE_TEMPLATES,
    ("PUT", f"{A}/template-rules"): Action.MANAGE_TEMPLATES,
    ("PUT", f"{A}/release-rules"): Action.MANAGE_RULES,
    ("GET", "/sheet-profiles"): Action.MANAGE_PROFILES,
    ("GET", "/sheet-profiles/new"): Action.MANAGE_PROFILES,
    ("POST", "/sheet-profiles"): Action.MANAGE_PROFILES,
    ("GET", "/sheet-profiles/{name}"): Action.MANAGE_PROFILES,
    ("POST", "/sheet-profiles/{name}/delete"): Action.MANAGE_PROFILES,
    ("PUT", f"{A}/sheet-profiles/{{name}}"): Action.MANAGE_PROFILES,
    ("DELETE", f"{A}/sheet-profiles/{{name}}"): Action.MANAGE_PROFILES,
    # the audit trail
    ("GET", "/audit"): Action.VIEW_AUDIT,
    ("GET", "/audit.csv"): Action.VIEW_AUDIT,
    ("GET", f"{A}/audit"): Action.VIEW_AUDIT,
    ("GET", "/users"): Action.MANAGE_USERS,
    ("POST", "/users"): Action.MANAGE_USERS,
    ("POST", "/users/{username}/{action}"): Action.MANAGE_USERS,
    ("GET", f"{A}/users"): Action.MANAGE_USERS,
    ("POST", f"{A}/users"): Action.MANAGE_USERS,
    ("POST", f"{A}/users/{{username}}/{{action}}"): Action.MANAGE_USERS,
}


def route_action(method: str, route: str | None) -> Action | None:
    """The action a request to `route` is; None for a route nobody put in the table."""
    method = "GET" if method == "HEAD" else method
    return ROUTE_ACTIONS.get((method, route or ""))


def role_of(value: Any) -> Role | None:
    try:
        return Role(value)
    except ValueError:
        return None


def allowed(role: Role | None, action: Action) -> bool:
    return role is not None and action in PERMISSIONS[role]


def can_see_batch(role: Role | None, username: str, uploaded_by: str | None) -> bool:
    """Uploaders follow their own batches; every other role that sees batches sees all."""
    if not allowed(role, Action.VIEW_BATCHES):
        return False
    return role is not Role.UPLOADER or uploaded_by == username


def can(role: Role | None) -> frozenset[str]:
    """What a role may do, for pages that show only the buttons that will work."""
    return frozenset(PERMISSIONS[role]) if role is not None else frozenset()
