"""After login the browser goes back only to a page of this site, whatever `next` says."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.gateway.accounts_logic import safe_next
from services.gateway.accounts_store import create_user
from services.gateway.main import create_app
from services.gateway.permissions import Role
from services.infra.database import Database
from services.infra.service import Resources
from tests.support import PASSWORD, csrf_from

# The classic open-redirect payloads, as `next` arrives once the query string is decoded.
HOSTILE = [
    "//evil.example",
    "///evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "/ /evil.example",
    "/\\evil.example",
    "\\/evil.example",
    "/\\/evil.example",
    "https://evil.example",
    "http:evil.example",
    "//evil.example/%2f..",
    "javascript:alert(1)",
    "evil.example",
    "/\u3002evil.example",
    "/\x00/evil.example",
    "",
]


@pytest.mark.parametrize("target", HOSTILE)
def test_a_next_that_could_leave_the_site_goes_to_the_dashboard(target: str) -> None:
    assert safe_next(target) == "/"


@pytest.mark.parametrize("target", ["/", "/batches/abc", "/reports?q=ada&status=held", "/%09/x"])
def test_a_local_path_is_kept(target: str) -> None:
    assert safe_next(target) == target


async def test_the_tab_trick_lands_on_the_dashboard_after_login(
    make_resources: Any, db: Database
) -> None:
    resources: Resources = make_resources("gateway")
    await create_user(db, "admin", PASSWORD, Role.VIEWER)  # a role without MFA: one step
    async with TestClient(TestServer(create_app(resources))) as client:
        page = await client.get("/login?next=/%09/evil.example")
        assert 'name="next" value="/"' in await page.text()
        form = {
            "username": "admin",
            "password": PASSWORD,
            "csrf_token": await csrf_from(client, "/login"),
            "next": "/\t/evil.example",
        }
        response = await client.post("/login", data=form, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/"
