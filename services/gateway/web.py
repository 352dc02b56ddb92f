"""aiohttp plumbing every audience of the gateway shares: request keys, page rendering (jinja2),
security headers, cookies, the access log and client details for the audit trail."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import jinja2
import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from pydantic import BaseModel, ValidationError

from services.gateway import logic, portal_language, proxies
from services.gateway.permissions import Role, can, can_see_batch, role_of
from services.infra.settings import Settings

log = structlog.get_logger()

SESSION = web.RequestKey("session", dict[str, Any])
USER = web.RequestKey("user", str)
ROLE = web.RequestKey("role", str)
NONCE = web.RequestKey("csp_nonce", str)
# Whether the request's session (or API token) is still good: long responses (SSE) ask.
STILL_SIGNED_IN = web.RequestKey[Callable[[], Awaitable[bool]]]("still_signed_in")
TRUSTED_PROXIES = web.AppKey("trusted_proxies", tuple[proxies.Network, ...])


def csp_nonce(request: web.Request) -> str:
    """The per-response nonce that lets the page's own inline script run, and nothing else."""
    nonce = request.get(NONCE)
    if nonce is None:
        nonce = secrets.token_urlsafe(16)
        request[NONCE] = nonce
    return nonce


HERE = Path(__file__).resolve().parent


def setup_pages(app: web.Application, settings: Settings) -> None:
    """Jinja2 pages (autoescaped) with what every page shows, the security headers on every
    response, and the static files."""

    async def page_context(request: web.Request) -> dict[str, Any]:
        session = request.get(SESSION)
        return {
            "user": request.get(USER),
            "role": request.get(ROLE, ""),
            "can": can(role_of(request.get(ROLE))),
            "csrf_token": session["csrf_token"] if session else "",
            "csp_nonce": csp_nonce(request),
            "lab_name": settings.lab_name,
            "time_zone": settings.time_zone,
            "outbox_enabled": settings.sms_provider == "outbox",
        }

    environment = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        context_processors=[page_context],
        filters={"datetime": functools.partial(format_datetime, zone=settings.time_zone)},
    )
    portal_language.install(environment)  # `_()` in the portal's pages
    app.on_response_prepare.append(security_headers(https=settings.cookie_secure))
    app[TRUSTED_PROXIES] = proxies.trusted_networks(settings.trusted_proxies)
    app.router.add_static("/static/", HERE / "static")


PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=()"
# Browsers keep to HTTPS for a year once they have seen this over HTTPS (ignored over HTTP).
STRICT_TRANSPORT_SECURITY = "max-age=31536000; includeSubDomains"

ResponseHook = Callable[[web.Request, web.StreamResponse], Awaitable[None]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def security_headers(*, https: bool) -> ResponseHook:
    """The on_response_prepare hook that sets the security headers; `https` (the gateway is
    served over HTTPS, i.e. `cookie_secure`) adds Strict-Transport-Security."""

    async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
        """Every response, including errors and the SSE stream."""
        headers = response.headers
        nonce = request.get(NONCE)
        script = f"'self' 'nonce-{nonce}'" if nonce else "'self'"
        headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; "
            f"script-src {script}; "
            "style-src 'self'; img-src 'self' data:; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        )
        headers.setdefault("X-Content-Type-Options", "nosniff")
        # Nothing is framed, by anyone: the one exception (the portal's PDF) says so itself.
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        if https:
            headers.setdefault("Strict-Transport-Security", STRICT_TRANSPORT_SECURITY)
        if not request.path.startswith("/static/"):
            # Pages hold patient data (admin) or are behind a patient's check (portal).
            headers["Cache-Control"] = "no-store"

    return add_security_headers


# Request bodies: a sheet upload may be large (the app's client_max_size), a form or an API
# body is small, and what anyone may post without signing in is smaller still.
SMALL_BODY_BYTES = 8 * 1024
FORM_BODY_BYTES = 256 * 1024
SMALL_BODY_ROUTES = frozenset(
    {
        "/login",
        "/login/password",
        "/login/mfa",
        "/login/mfa/setup",
        "/login/recovery-codes",
        "/logout",
        "/r/{token}",
        "/webhooks/twilio/status",
    }
)
UPLOAD_ROUTES = frozenset({"/upload", "/api/v1/batches", "/templates", "/api/v1/templates"})
# Anyone may ask whether a PDF is genuine: a report with a letterhead's images and embedded
# fonts runs to a few MB at most.
VERIFY_ROUTE, VERIFY_BODY_BYTES = "/v/{reference}", 16 * 1024 * 1024


def body_limit(route: str, upload_limit: int) -> int:
    if route in SMALL_BODY_ROUTES:
        return SMALL_BODY_BYTES
    if route == VERIFY_ROUTE:
        return min(VERIFY_BODY_BYTES, upload_limit)
    return upload_limit if route in UPLOAD_ROUTES else FORM_BODY_BYTES


@web.middleware
async def body_limits(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a body larger than its route takes (413) before anything reads it. Bodies
    under a limit below the app's must say their length: a chunked one is refused (411)."""
    if request.can_read_body and request.match_info.http_exception is None:
        resource = request.match_info.route.resource
        limit = body_limit(resource.canonical if resource else "", request.client_max_size)
        length = request.content_length
        if length is None and limit < request.client_max_size:
            raise web.HTTPLengthRequired(text="Send the body with a Content-Length.")
        if length is not None and length > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=length)
    return await handler(request)


def cookie_name(name: str, *, secure: bool) -> str:
    """Over HTTPS a site-wide cookie is `__Host-`: the browser then accepts it only from this
    host, over HTTPS, for path /, so no subdomain or plain-HTTP page can set or shadow it."""
    return f"__Host-{name}" if secure else name


def set_cookie(
    response: web.StreamResponse,
    name: str,
    value: str,
    *,
    path: str,
    secure: bool,
    max_age: int | None = None,
    samesite: str = "Lax",
) -> None:
    """Every cookie the gateway sets: HttpOnly, Secure behind HTTPS."""
    if name.startswith("__Host-") and path != "/":
        raise ValueError("a __Host- cookie must have path /")
    response.set_cookie(
        name, value, path=path, httponly=True, samesite=samesite, secure=secure, max_age=max_age
    )


def render(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    return aiohttp_jinja2.render_template(template, request, context, status=status)


def json_error(status: int, error: str, detail: Any = None) -> web.Response:
    """Every error of the admin API: `{"error": <kind>, "detail": <what to do>}`."""
    return web.json_response({"error": error, "detail": detail}, status=status)


def pdf_response(
    data: bytes, sample_date: Any, *, download: bool = False, framed_here: bool = False
) -> web.Response:
    """A report's PDF, named by its sample date: shown (inline) or saved (attachment).
    `framed_here`: the one response a page of this site may frame (the portal's report)."""
    name = logic.report_download_name(sample_date)
    headers = {
        "Content-Type": "application/pdf",
        "Content-Disposition": f'{"attachment" if download else "inline"}; filename="{name}"',
    }
    if framed_here:
        headers |= {
            "Content-Security-Policy": "frame-ancestors 'self'",
            "X-Frame-Options": "SAMEORIGIN",
        }
    return web.Response(body=data, headers=headers)


def ok(model: BaseModel, status: int = 200) -> web.Response:
    return web.json_response(text=model.model_dump_json(), status=status)


async def body(request: web.Request, model: type[BaseModel]) -> Any:
    """The request's JSON body as `model`; a 400 naming what is wrong otherwise."""
    try:
        return model.model_validate_json(await request.read() or b"{}")
    except ValidationError as error:
        detail = [
            {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]}
            for e in error.errors()
        ]
        raise web.HTTPBadRequest(
            text=web.json_response({"error": "invalid", "detail": detail}).text,
            content_type="application/json",
        ) from None


def redirect(location: str) -> web.Response:
    """A 303 to return (not raise) when cookies go with it."""
    return web.Response(status=303, headers={"Location": location})


def sees_batch(request: web.Request, batch: Mapping[str, Any] | None) -> bool:
    """Whether the signed-in user may see this batch (an uploader: only their own)."""
    return batch is not None and can_see_batch(
        role_of(request.get(ROLE)), request.get(USER, ""), batch.get("uploaded_by")
    )


def own_batches_only(request: web.Request) -> str:
    """The uploader whose batches alone a list may show; "" when the role sees them all."""
    return request.get(USER, "") if request.get(ROLE) == Role.UPLOADER else ""


def client_address(request: web.Request) -> str:
    """Where the request came from, for the audit trail: the peer's address, or, when the peer
    is a trusted proxy (`RESULTFLOW_TRUSTED_PROXIES`), the address it forwarded for
    (`proxies.client_address`)."""
    trusted = request.config_dict.get(TRUSTED_PROXIES)
    return proxies.client_address(
        request.remote or "", request.headers.getall("X-Forwarded-For", []), trusted or ()
    )


def client_detail(request: web.Request) -> dict[str, Any]:
    """The request's side of an audit entry: address and browser, and the signed-in staff
    member's role (`actor_role`, which `Audit.write` records as the entry's role)."""
    detail: dict[str, Any] = {
        "ip": client_address(request),
        "user_agent": request.headers.get("User-Agent", "")[:300],
    }
    if role := request.get(ROLE):
        detail["actor_role"] = str(role)
    return detail


def format_datetime(value: Any, seconds: bool = False, zone: str = "UTC") -> str:
    """An instant as text on the lab's clock (`RESULTFLOW_TIME_ZONE`), with UTC beside it
    when that is another zone ("2026-07-01 09:30 BST (08:30 UTC)"); `seconds` for
    timelines, where steps come seconds apart."""
    # Documents written by other services may lack a field: show nothing rather than fail.
    if not isinstance(value, datetime):
        return ""
    clock = "%H:%M:%S" if seconds else "%H:%M"
    utc = value.astimezone(UTC)
    if zone == "UTC":
        return utc.strftime(f"%Y-%m-%d {clock} UTC")
    local = value.astimezone(ZoneInfo(zone)).strftime(f"%Y-%m-%d {clock} %Z")
    return f"{local} ({utc.strftime(clock)} UTC)"


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
