"""aiohttp plumbing shared by the gateway's pages: app keys, security headers, the access log,
page rendering and client details for the audit trail."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import aiohttp_jinja2
import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from services.gateway import logic

log = structlog.get_logger()

SESSION = web.RequestKey("session", dict[str, Any])
USER = web.RequestKey("user", str)
NONCE = web.RequestKey("csp_nonce", str)


def csp_nonce(request: web.Request) -> str:
    """The per-response nonce that lets the page's own inline script run, and nothing else."""
    nonce = request.get(NONCE)
    if nonce is None:
        nonce = secrets.token_urlsafe(16)
        request[NONCE] = nonce
    return nonce


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, including errors and the SSE stream."""
    headers = response.headers
    nonce = request.get(NONCE)
    script = f"'self' 'nonce-{nonce}'" if nonce else "'self'"
    headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; "
        f"script-src {script}; "
        "style-src 'self'; img-src 'self' data:; object-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'self'",
    )
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    headers.setdefault("Referrer-Policy", "no-referrer")
    if not request.path.startswith("/static/"):
        # Pages hold patient data (admin) or are behind a patient's check (portal).
        headers["Cache-Control"] = "no-store"


def render(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    return aiohttp_jinja2.render_template(template, request, context, status=status)


def redirect(location: str) -> web.Response:
    """A 303 to return (not raise) when cookies go with it."""
    return web.Response(status=303, headers={"Location": location})


def client_detail(request: web.Request) -> dict[str, Any]:
    return {"ip": request.remote or "", "user_agent": request.headers.get("User-Agent", "")[:300]}


def format_datetime(value: Any) -> str:
    # Documents written by other services may lack a field: show nothing rather than fail.
    if not isinstance(value, datetime):
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


class RedactingAccessLogger(AbstractAccessLogger):
    """Access log through structlog with the portal link token cut out of the path.

    aiohttp's own access log prints the request line, which for the portal holds the token
    that opens a patient's report.
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        log.info(
            "http.request",
            method=request.method,
            path=logic.redact_path(request.path),
            status=response.status,
            duration_ms=round(time * 1000, 1),
        )
