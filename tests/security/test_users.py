"""Staff accounts managed by an admin: in the dashboard (a real browser), through the admin
API and with `resultflow users`; every change audited, and a reset user starts again."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pymongo import MongoClient

from services.cli import main
from services.gateway.accounts_store import ApiTokens, create_user
from services.gateway.main import create_app
from services.infra.database import Database
from services.infra.service import Resources
from services.infra.settings import Settings
from tests.support import PASSWORD, browser_log_in, chromium

NEW_PASSWORD = "a brand new passphrase 7"


@pytest.fixture
async def client(make_resources: Callable[[str], Resources]) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(make_resources("gateway")))) as test_client:
        yield test_client


async def test_an_admin_adds_a_reviewer_who_chooses_a_password_and_sets_up_mfa(
    client: TestClient[Any, Any], db: Database
) -> None:
    await create_user(db, "admin", PASSWORD)
    base_url = str(client.make_url("")).rstrip("/")
    async with chromium() as browser:
        admin = await (await browser.new_context()).new_page()
        await browser_log_in(admin, base_url)
        await admin.click("nav >> text=Staff")
        await admin.fill("#new-username", "nina")
        await admin.select_option("#new-role", "reviewer")
        await admin.click("button:has-text('Add')")
        temporary = (await admin.text_content("#temporary-password") or "").strip()
        assert len(temporary) >= 20
        assert "must choose a new password" in await admin.inner_text("#user-nina")

        nina = await (await browser.new_context()).new_page()
        await nina.goto(f"{base_url}/login")
        await nina.fill("#username", "nina")
        await nina.fill("#password", temporary)
        await nina.click("button[type=submit]")
        assert nina.url.endswith("/login/password")
        await nina.fill("#new_password", "passwordpassword")
        await nina.fill("#new_password_again", "passwordpassword")
        await nina.click("button[type=submit]")
        assert "seen in breaches" in await nina.inner_text("[role=alert]")
        await nina.fill("#new_password", NEW_PASSWORD)
        await nina.fill("#new_password_again", NEW_PASSWORD)
        await nina.click("button[type=submit]")
        # A reviewer must set up the second factor before anything else.
        assert nina.url.endswith("/login/mfa/setup")
        await browser_log_in(nina, base_url, "nina", NEW_PASSWORD)
        assert "Release queue" in await nina.inner_text("nav")

        await admin.goto(f"{base_url}/users")
        await admin.click("#user-nina >> button:has-text('Disable')")
        assert "nina can no longer sign in" in await admin.inner_text("[role=status]")
        await nina.reload()
        assert "/login" in nina.url

    actions = [e["action"] async for e in db.audit.find({"object": "nina"}).sort("seq", 1)]
    assert actions[:1] == ["user.created"] and "user.password_changed" in actions
    assert "mfa.enrolled" in actions and actions[-1] == "user.disabled"


async def test_the_api_manages_users_and_keeps_one_admin(
    client: TestClient[Any, Any], db: Database
) -> None:
    await create_user(db, "admin", PASSWORD)
    _, token = await ApiTokens(db).create("admin")
    auth = {"Authorization": f"Bearer {token}"}
    created = await client.post(
        "/api/v1/users", json={"username": "ula", "role": "uploader"}, headers=auth
    )
    body = await created.json()
    assert created.status == 201 and len(body["temporary_password"]) >= 20
    twice = await client.post(
        "/api/v1/users", json={"username": "ula", "role": "uploader"}, headers=auth
    )
    assert twice.status == 409 and "already exists" in (await twice.json())["detail"]

    role = await client.post("/api/v1/users/ula/set-role", json={"role": "viewer"}, headers=auth)
    assert role.status == 200
    reset = await client.post("/api/v1/users/ula/reset-password", json={}, headers=auth)
    assert (await reset.json())["temporary_password"] != body["temporary_password"]
    listed = await (await client.get("/api/v1/users", headers=auth)).json()
    ula = next(u for u in listed["items"] if u["username"] == "ula")
    assert (ula["role"], ula["must_change_password"]) == ("viewer", True)
    assert "password_hash" not in str(listed)

    last = await client.post("/api/v1/users/admin/disable", json={}, headers=auth)
    assert last.status == 409 and "last admin" in (await last.json())["detail"]
    missing = await client.post("/api/v1/users/nobody/enable", json={}, headers=auth)
    assert missing.status == 404
    await client.post("/api/v1/users/ula/enable", json={}, headers=auth)
    assert (
        await client.post("/api/v1/users/nobody/end-sessions", json={}, headers=auth)
    ).status == 404
    ended = await client.post("/api/v1/users/ula/end-sessions", json={}, headers=auth)
    assert ended.status == 200 and await db.audit.find_one({"action": "user.sessions_ended"})
    openapi = await (await client.get("/api/v1/openapi.json")).json()
    assert "/users/{username}/{action}" in str(openapi["paths"])


@pytest.mark.usefixtures("cli_env")
def test_the_command_line_resets_a_password_and_a_second_factor(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{PASSWORD}\n"))
    main(["users", "create", "rita", "--role", "reviewer", "--password-stdin"])
    main(["users", "reset-password", "rita"])
    main(["users", "reset-mfa", "rita"])
    main(["users", "list"])
    out = capsys.readouterr().out
    temporary = re.search(r"next login\): (\S+)", out)
    assert temporary and '"username": "rita"' in out
    with MongoClient[dict[str, Any]](settings.mongodb_uri) as mongo:
        database = mongo[settings.mongodb_database]
        user = database.users.find_one({"username": "rita"})
        actions = [a["action"] for a in database.audit.find().sort("seq", 1)]
        mongo.drop_database(settings.mongodb_database)
    assert user is not None and user["must_change_password"] is True
    assert temporary.group(1) not in str(user)
    assert actions == ["user.created", "user.reset_password", "user.reset_mfa"]
