"""Every route of the gateway, for every role and for no one signed in, against a table of
who may do what. A route the table does not know fails the test, so a new route cannot slip
in without a decision about who may use it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from devtools.admin_client import sign_in
from services.gateway.accounts_store import ApiTokens, create_user
from services.gateway.main import create_app
from services.gateway.permissions import Role
from services.infra.database import Database
from services.infra.service import Resources
from tests.support import PASSWORD

ADMIN, REVIEWER, UPLOADER, VIEWER, LIS = (r.value for r in Role)
EVERYONE = "everyone"  # public: no sign-in needed
METRICS_TOKEN = "metrics token"  # no role at all: only the metrics bearer token (ops tests)
STAFF = {ADMIN, REVIEWER, UPLOADER, VIEWER}
SEE_REPORTS = {ADMIN, REVIEWER, VIEWER}
REVIEW = {ADMIN, REVIEWER}
A = "/api/v1"

# (method, route) -> who may use it; written here, apart from the code's own table.
EXPECTED: dict[tuple[str, str], set[str] | str] = {
    ("GET", "/login"): EVERYONE,
    ("POST", "/login"): EVERYONE,
    ("GET", "/r/{token}"): EVERYONE,
    ("POST", "/r/{token}"): EVERYONE,
    ("POST", "/r/{token}/code"): EVERYONE,
    ("GET", "/portal/report"): EVERYONE,
    ("GET", "/portal/report.pdf"): EVERYONE,
    ("POST", "/webhooks/twilio/status"): EVERYONE,
    ("POST", "/webhooks/twilio/inbound"): EVERYONE,
    ("POST", "/webhooks/outbox/inbound"): EVERYONE,
    ("POST", "/webhooks/africastalking/delivery/{secret}"): EVERYONE,
    ("GET", "/healthz"): EVERYONE,
    ("GET", "/v/{reference}"): EVERYONE,
    ("GET", "/templates"): {ADMIN},
    ("POST", "/templates"): {ADMIN},
    ("GET", "/templates/{name}"): {ADMIN},
    ("POST", "/templates/{name}/{version}/activate"): {ADMIN},
    ("GET", "/templates/{name}/{version}/preview.pdf"): {ADMIN},
    ("POST", "/templates/{name}/{version}/mapping"): {ADMIN},
    ("GET", "/template-rules"): {ADMIN},
    ("POST", "/template-rules"): {ADMIN},
    ("GET", f"{A}/templates"): {ADMIN},
    ("POST", f"{A}/templates"): {ADMIN},
    ("POST", f"{A}/templates/{{name}}/{{version}}/activate"): {ADMIN},
    ("PUT", f"{A}/templates/{{name}}/{{version}}/mapping"): {ADMIN},
    ("GET", f"{A}/templates/{{name}}/{{version}}/preview.pdf"): {ADMIN},
    ("GET", f"{A}/template-rules"): {ADMIN},
    ("PUT", f"{A}/template-rules"): {ADMIN},
    ("POST", "/v/{reference}"): EVERYONE,
    ("GET", "/readyz"): METRICS_TOKEN,
    ("GET", "/metrics"): METRICS_TOKEN,
    ("GET", "/audit"): {ADMIN},
    ("GET", "/audit.csv"): {ADMIN},
    ("GET", f"{A}/audit"): {ADMIN},
    ("GET", "/static"): EVERYONE,
    ("GET", f"{A}/openapi.json"): EVERYONE,
    ("GET", "/"): STAFF,
    ("GET", "/batches/{batch_id}"): STAFF,
    ("GET", "/batches/{batch_id}/counts"): STAFF,
    ("GET", "/batches/{batch_id}/events"): STAFF,
    ("GET", f"{A}/batches"): STAFF,
    ("GET", f"{A}/batches/{{batch_id}}"): STAFF,
    ("GET", "/upload"): {ADMIN, REVIEWER, UPLOADER},
    ("POST", "/upload"): {ADMIN, REVIEWER, UPLOADER},
    ("POST", f"{A}/batches"): {ADMIN, REVIEWER, UPLOADER, LIS},
    ("POST", "/batches/{batch_id}/confirm"): {ADMIN, REVIEWER, UPLOADER},
    ("POST", "/batches/{batch_id}/discard"): {ADMIN, REVIEWER, UPLOADER},
    ("POST", f"{A}/batches/{{batch_id}}/confirm"): {ADMIN, REVIEWER, UPLOADER, LIS},
    ("POST", f"{A}/batches/{{batch_id}}/discard"): {ADMIN, REVIEWER, UPLOADER, LIS},
    ("GET", f"{A}/sheet-profiles"): {ADMIN, REVIEWER, UPLOADER, LIS},
    ("GET", f"{A}/sheet-profiles/{{name}}"): {ADMIN, REVIEWER, UPLOADER, LIS},
    ("PUT", f"{A}/sheet-profiles/{{name}}"): {ADMIN},
    ("DELETE", f"{A}/sheet-profiles/{{name}}"): {ADMIN},
    ("GET", "/sheet-profiles"): {ADMIN},
    ("GET", "/sheet-profiles/new"): {ADMIN},
    ("POST", "/sheet-profiles"): {ADMIN},
    ("GET", "/sheet-profiles/{name}"): {ADMIN},
    ("POST", "/sheet-profiles/{name}/delete"): {ADMIN},
    ("POST", "/fhir/r4/Bundle"): {ADMIN, REVIEWER, UPLOADER, LIS},
    ("GET", "/reports"): SEE_REPORTS,
    ("GET", "/glance"): SEE_REPORTS,
    ("GET", "/reports/{report_id}"): SEE_REPORTS,
    ("GET", "/reports/{report_id}/report.pdf"): SEE_REPORTS,
    ("GET", "/outbox"): SEE_REPORTS,
    ("GET", "/queue"): SEE_REPORTS,
    ("GET", "/dead-letters"): SEE_REPORTS,
    ("GET", f"{A}/dead-letters"): SEE_REPORTS,
    ("GET", "/release-rules"): SEE_REPORTS,
    ("GET", f"{A}/reports"): SEE_REPORTS,
    ("GET", f"{A}/glance"): SEE_REPORTS,
    ("GET", f"{A}/reports/{{report_id}}"): SEE_REPORTS,
    ("GET", f"{A}/release-rules"): SEE_REPORTS,
    ("POST", "/queue/release"): REVIEW,
    ("POST", "/dead-letters/replay-all"): REVIEW,
    ("POST", "/dead-letters/{letter_id}/{action}"): REVIEW,
    ("POST", f"{A}/dead-letters/replay-all"): REVIEW,
    ("POST", f"{A}/dead-letters/{{letter_id}}/{{action}}"): REVIEW,
    ("POST", "/reports/{report_id}/{action}"): REVIEW,
    ("POST", "/batches/{batch_id}/{action}"): REVIEW,
    ("POST", f"{A}/reports/release"): REVIEW,
    ("POST", f"{A}/reports/{{report_id}}/release"): REVIEW,
    ("POST", f"{A}/reports/{{report_id}}/withdraw"): REVIEW,
    ("POST", f"{A}/reports/{{report_id}}/retry"): REVIEW,
    ("POST", f"{A}/reports/{{report_id}}/resend"): REVIEW,
    ("POST", f"{A}/reports/{{report_id}}/reissue-link"): REVIEW,
    ("POST", f"{A}/batches/{{batch_id}}/{{action}}"): REVIEW,
    ("POST", "/release-rules"): {ADMIN},
    ("PUT", f"{A}/release-rules"): {ADMIN},
    ("GET", "/login/password"): EVERYONE,
    ("POST", "/login/password"): EVERYONE,
    ("GET", "/login/mfa"): EVERYONE,
    ("POST", "/login/mfa"): EVERYONE,
    ("GET", "/login/mfa/setup"): EVERYONE,
    ("POST", "/login/mfa/setup"): EVERYONE,
    ("POST", "/login/recovery-codes"): EVERYONE,
    ("GET", "/account"): STAFF,
    ("POST", "/account/password"): STAFF,
    ("POST", "/account/sessions/end-others"): STAFF,
    ("GET", "/users"): {ADMIN},
    ("POST", "/users"): {ADMIN},
    ("POST", "/users/{username}/{action}"): {ADMIN},
    ("GET", f"{A}/users"): {ADMIN},
    ("POST", f"{A}/users"): {ADMIN},
    ("POST", f"{A}/users/{{username}}/{{action}}"): {ADMIN},
    ("POST", "/logout"): STAFF,
}
FILLERS = {
    "{token}": "A" * 43,
    "{batch_id}": "no-such-batch",
    "{report_id}": "no-such-report",
    "{action}": "cancel",
    "{username}": "no-such-user",
    "{letter_id}": "no-such-letter",
    "{name}": "lab-letterhead",
    "{version}": "1",
    "{secret}": "not-the-secret",
}


def concrete(route: str) -> str:
    path = "/static/style.css" if route == "/static" else route
    if path.startswith("/reports/{report_id}/{action}"):
        path = path.replace("{action}", "release")
    if "/dead-letters/{letter_id}/{action}" in path:
        path = path.replace("{action}", "replay")
    if "/users/{username}/{action}" in path:
        path = path.replace("{action}", "enable")
    for placeholder, value in FILLERS.items():
        path = path.replace(placeholder, value)
    return path


class Caller:
    """One role's way in: a signed-in browser session, an API token, or nothing."""

    def __init__(self, base: str, role: str | None) -> None:
        self.base, self.role = base, role
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.headers: dict[str, str] = {}

    async def sign_in(self, db: Database) -> None:
        if self.role is None:
            return
        await create_user(db, self.role, PASSWORD, Role(self.role))
        if self.role == LIS:
            _, token = await ApiTokens(db).create(self.role)
            self.headers["Authorization"] = f"Bearer {token}"
            return

        async def fetch(method: str, path: str, form: dict[str, str] | None) -> tuple[str, str]:
            async with self.http.request(method, self.base + path, data=form) as response:
                return response.url.path, await response.text()

        await sign_in(fetch, self.role, PASSWORD)
        session = await db.sessions.find_one({"username": self.role, "stage": "done"})
        assert session is not None
        self.headers["X-CSRF-Token"] = session["csrf_token"]

    async def call(self, method: str, path: str) -> tuple[int, str, str]:
        kwargs: dict[str, Any] = {"headers": self.headers, "allow_redirects": False}
        if method in ("POST", "PUT") and path.startswith(A):
            kwargs["json"] = {}
        async with self.http.request(method, self.base + path, **kwargs) as response:
            return response.status, await response.text(), response.headers.get("Location", "")


def refused_by_role(status: int, text: str) -> bool:
    return status == 403 and ("Not allowed for your role" in text or '"forbidden"' in text)


def not_signed_in(method: str, status: int, text: str, location: str) -> bool:
    # Pages send a reader to the login page; a form post is refused; the API answers 401.
    return (
        status == 401
        or (method == "GET" and status == 303 and location.startswith("/login"))
        or (status == 403 and "Not logged in" in text)
    )


@pytest.fixture
async def base_url(make_resources: Callable[[str], Resources]) -> AsyncIterator[str]:
    server = TestServer(create_app(make_resources("gateway")))
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def test_every_route_lets_exactly_the_roles_in_the_table_through(
    base_url: str, db: Database
) -> None:
    app_routes = {
        (r.method, r.resource.canonical)
        for r in create_app(Resources.create("matrix")).router.routes()
        if r.method != "HEAD" and r.resource is not None
    }
    assert app_routes - EXPECTED.keys() == set(), "routes missing from the table"
    assert EXPECTED.keys() - app_routes == set(), "the table names routes that are gone"
    # Log out last: it ends the session the other calls use.
    order = sorted(EXPECTED, key=lambda key: key == ("POST", "/logout"))
    wrong: list[str] = []
    for role in [None, *(r.value for r in Role)]:
        caller = Caller(base_url, role)
        try:
            await caller.sign_in(db)
            for method, route in order:
                status, text, location = await caller.call(method, concrete(route))
                who = EXPECTED[(method, route)]
                if who == METRICS_TOKEN:
                    if status not in (401, 403):
                        wrong.append(f"{role or 'no one'} {method} {route}: {status}")
                    continue
                allowed = who == EVERYONE or (role is not None and role in who)
                denied = refused_by_role(status, text) or (
                    # a later step of the login sends a browser with no login under way to
                    # its start: its own check, not a refusal
                    not route.startswith("/login/")
                    and not_signed_in(method, status, text, location)
                )
                if allowed == denied:
                    wrong.append(f"{role or 'no one'} {method} {route}: {status} {text[:80]!r}")
        finally:
            await caller.http.close()
    assert wrong == [], "\n".join(wrong)
