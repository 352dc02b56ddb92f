"""Roles beyond the route table: who may sign in, uploaders' own batches, disabled users, and
user management from the command line (audited)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pymongo import MongoClient

from contracts.v1 import utcnow
from services.cli import main
from services.gateway.accounts_store import ApiTokens, Users, create_user
from services.gateway.main import create_app
from services.gateway.permissions import Role
from services.infra.database import Database
from services.infra.service import Resources
from services.infra.settings import Settings
from tests.support import PASSWORD, log_in


@pytest.fixture
async def client(make_resources: Callable[[str], Resources]) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(make_resources("gateway")))) as test_client:
        yield test_client


async def batch(db: Database, batch_id: str, uploaded_by: str) -> None:
    await db.batches.insert_one(
        {
            "_id": batch_id,
            "lab_id": "demo-lab",
            "filename": f"{batch_id}.xlsx",
            "status": "ingested",
            "uploaded_by": uploaded_by,
            "uploaded_at": utcnow(),
        }
    )


async def test_a_system_account_and_a_disabled_one_cannot_sign_in_to_the_dashboard(
    client: TestClient[Any, Any], db: Database
) -> None:
    await create_user(db, "lis-bridge", PASSWORD, Role.LIS)
    refused = await log_in(client, "lis-bridge")
    assert refused.status == 403
    assert "cannot sign in to the dashboard" in await refused.text()

    await create_user(db, "ann", PASSWORD, Role.VIEWER)
    assert (await log_in(client, "ann")).status == 200
    assert (await client.get("/reports", allow_redirects=False)).status == 200
    await Users(db).set_disabled("ann", True)
    # Her session still exists, but a disabled user may do nothing with it.
    after = await client.get("/reports", allow_redirects=False)
    assert after.status == 303 and after.headers["Location"].startswith("/login")


async def test_an_uploader_follows_only_their_own_batches(
    client: TestClient[Any, Any], db: Database
) -> None:
    await create_user(db, "uma", PASSWORD, Role.UPLOADER)
    await batch(db, "mine", "uma")
    await batch(db, "theirs", "someone-else")
    assert (await log_in(client, "uma")).status == 200
    dashboard = await (await client.get("/")).text()
    assert "mine.xlsx" in dashboard and "theirs.xlsx" not in dashboard
    assert (await client.get("/batches/mine")).status == 200
    assert (await client.get("/batches/theirs")).status == 404
    assert (await client.get("/batches/theirs/counts")).status == 404
    _, token = await ApiTokens(db).create("uma")
    headers = {"Authorization": f"Bearer {token}"}
    listed = await (await client.get("/api/v1/batches", headers=headers)).json()
    assert [item["id"] for item in listed["items"]] == ["mine"]
    assert (await client.get("/api/v1/batches/theirs", headers=headers)).status == 404


async def test_pages_show_only_what_the_role_may_use(
    client: TestClient[Any, Any], db: Database
) -> None:
    await create_user(db, "vic", PASSWORD, Role.VIEWER)
    assert (await log_in(client, "vic")).status == 200
    page = await (await client.get("/release-rules")).text()
    assert "Save the rules" not in page and "Only an admin can change the rules" in page
    nav = await (await client.get("/")).text()
    assert 'href="/upload"' not in nav and "vic (viewer)" in nav


@pytest.mark.usefixtures("cli_env")
def test_users_are_created_with_a_role_changed_and_disabled_from_the_command_line(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    main(["users", "create", "rita", "--role", "reviewer", "--password-stdin"])
    main(["users", "set-role", "rita", "viewer"])
    main(["users", "disable", "rita"])
    with pytest.raises(SystemExit) as unknown:
        main(["users", "disable", "nobody"])
    with MongoClient[dict[str, Any]](settings.mongodb_uri) as mongo:
        database = mongo[settings.mongodb_database]
        user = database.users.find_one({"username": "rita"})
        actions = [a["action"] for a in database.audit.find().sort("at", 1)]
        mongo.drop_database(settings.mongodb_database)
    assert user is not None and (user["role"], user["disabled"]) == ("viewer", True)
    assert actions == ["user.created", "user.role_changed", "user.disabled"]
    assert "User 'nobody' does not exist" in str(unknown.value.code)
