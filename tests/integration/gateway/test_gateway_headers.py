"""Security headers the gateway puts on every response."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from services.gateway.main import create_app
from services.infra.service import Resources

# A page, a redirect, an error, a static file, a webhook refusal and the health check.
PATHS = ("/login", "/", "/r/not-a-link", "/static/style.css", "/healthz")


async def test_every_response_turns_off_camera_microphone_geolocation_and_payment(
    client: TestClient[Any, Any],
) -> None:
    responses = [await client.get(path, allow_redirects=False) for path in PATHS]
    responses.append(await client.post("/webhooks/twilio/status", data={}))
    assert [r.status for r in responses] == [200, 303, 404, 200, 200, 403]
    for response in responses:
        assert response.headers["Permissions-Policy"] == (
            "camera=(), microphone=(), geolocation=(), payment=()"
        ), response.url
        # Nothing may be framed (clickjacking) or embed plugins.
        assert response.headers["X-Frame-Options"] == "DENY", response.url
        policy = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy


async def test_over_plain_http_no_strict_transport_security_is_sent(
    client: TestClient[Any, Any],
) -> None:
    response = await client.get("/login")
    assert "Strict-Transport-Security" not in response.headers


async def test_behind_https_every_response_asks_for_https_for_a_year(
    resources: Resources,
) -> None:
    resources.settings = resources.settings.model_copy(update={"cookie_secure": True})
    async with TestClient(TestServer(create_app(resources))) as client:
        for path in PATHS:
            response = await client.get(path, allow_redirects=False)
            assert response.headers["Strict-Transport-Security"] == (
                "max-age=31536000; includeSubDomains"
            ), path
