"""`POST /fhir/r4/Bundle` over HTTP against real RabbitMQ and the MongoDB-protocol server:
a laboratory system's API token (the `lis` role) hands a Bundle to ingest; a broken one is
answered with an OperationOutcome naming each problem, and nothing is queued."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from services.gateway.accounts_store import ApiTokens, create_user
from services.gateway.permissions import Role
from services.infra.audit import staff
from services.infra.database import Database
from tests.support import PASSWORD, drain

DATA = Path(__file__).parents[2] / "data" / "fhir"


@pytest.fixture
async def lis(client: TestClient[Any, Any], db: Database) -> TestClient[Any, Any]:
    await create_user(db, "lis-system", PASSWORD, Role.LIS)
    _, token = await ApiTokens(db).create("lis-system", "tests")
    client.session.headers["Authorization"] = f"Bearer {token}"
    return client


async def post(client: TestClient[Any, Any], name: str) -> Any:
    body = (DATA / name).read_bytes()
    headers = {"Content-Type": "application/fhir+json"}
    return await client.post("/fhir/r4/Bundle", data=body, headers=headers)


async def test_an_lis_token_posts_a_bundle_and_ingest_is_asked_to_map_it(
    lis: TestClient[Any, Any], db: Database, amqp_url: str
) -> None:
    response = await post(lis, "bundle_collection.json")
    assert response.status == 202
    outcome = await response.json(content_type=None)
    assert outcome["resourceType"] == "OperationOutcome"
    assert "ACC-FHIR-0001" in outcome["issue"][0]["diagnostics"]
    (queued,) = await drain(amqp_url, "ingest.fhir-bundle")
    assert (queued["message_id"], queued["lab_id"]) == ("fhir-bundle-0001", "demo-lab")
    assert queued["bundle"]["entry"][0]["resource"]["name"][0]["given"] == ["Zoë"]
    entry = await db.audit.find_one({"action": "fhir.bundle_received"})
    assert entry is not None and entry["actor"] == staff("lis-system")


async def test_a_broken_bundle_gets_an_operation_outcome_and_nothing_is_queued(
    lis: TestClient[Any, Any], amqp_url: str
) -> None:
    response = await post(lis, "bundle_broken.json")
    assert response.status == 422
    assert response.content_type == "application/fhir+json"
    outcome = await response.json(content_type=None)
    where = {issue["expression"][0] for issue in outcome["issue"]}
    assert where == {"Bundle.entry[2].resource.interpretation", "Bundle.entry[0].resource.telecom"}
    not_json = await lis.post("/fhir/r4/Bundle", data=b"{oops", headers={"Content-Length": "5"})
    assert not_json.status == 400
    assert await drain(amqp_url, "ingest.fhir-bundle") == []


async def test_without_a_token_the_fhir_door_is_closed(client: TestClient[Any, Any]) -> None:
    response = await client.post("/fhir/r4/Bundle", data=b"{}")
    assert response.status == 401
