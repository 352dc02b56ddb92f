"""Operations endpoints: liveness is public and says nothing; readiness and metrics answer only
the metrics token, and metrics are counted at most once per cache period."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.gateway.main import create_app
from services.infra.database import Database
from services.infra.process_registry import read_records
from services.infra.service import Resources
from services.infra.settings import Settings
from tests.support import report_document

TOKEN = "metrics-token-for-tests-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"metrics_token": TOKEN, "metrics_cache_seconds": 60})


async def test_liveness_is_public_and_names_nothing_the_gateway_depends_on(
    client: TestClient[Any, Any],
) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_readiness_checks_mongodb_and_the_broker_for_the_token_holder_only(
    client: TestClient[Any, Any],
) -> None:
    ready = await client.get("/readyz", headers=BEARER)
    assert ready.status == 200
    assert await ready.json() == {"status": "ok", "mongodb": True, "broker": True}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        refused = await client.get("/readyz", headers=headers)
        assert refused.status == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
        assert "mongodb" not in await refused.text()


async def test_metrics_count_reports_and_batches_for_the_token_holder_only(
    client: TestClient[Any, Any], db: Database
) -> None:
    await db.reports.insert_many(
        [report_document(status="delivered"), report_document(status="failed")]
    )
    assert (await client.get("/metrics")).status == 401
    response = await client.get("/metrics", headers=BEARER)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    metrics = await response.text()
    assert 'resultflow_reports{status="delivered"} 1' in metrics
    assert 'resultflow_reports{status="failed"} 1' in metrics


async def test_quick_scrapes_get_the_cached_figures_not_a_new_count(
    client: TestClient[Any, Any], db: Database
) -> None:
    await db.reports.insert_one(report_document(status="delivered"))
    first = await (await client.get("/metrics", headers=BEARER)).text()
    await db.reports.insert_one(report_document(status="delivered"))
    second = await (await client.get("/metrics", headers=BEARER)).text()
    assert 'resultflow_reports{status="delivered"} 1' in first
    assert second == first  # within the cache period: the same figures, no new aggregation


@pytest.fixture
async def unconfigured(
    make_resources: Callable[[str], Resources], settings: Settings
) -> AsyncIterator[TestClient[Any, Any]]:
    resources = make_resources("gateway")
    resources.settings = settings.model_copy(update={"metrics_token": ""})
    async with TestClient(TestServer(create_app(resources))) as test_client:
        yield test_client


async def test_without_a_configured_token_readiness_and_metrics_answer_no_one(
    unconfigured: TestClient[Any, Any],
) -> None:
    for path in ("/readyz", "/metrics"):
        for headers in ({}, {"Authorization": "Bearer "}):
            assert (await unconfigured.get(path, headers=headers)).status == 403
    assert (await unconfigured.get("/healthz")).status == 200


async def test_metrics_show_each_queues_depth_and_consumers(
    client: TestClient[Any, Any], resources: Resources
) -> None:
    # No render worker runs here: what is published to its queue waits there.
    for n in range(3):
        body = f'{{"not": "a contract {n}"}}'.encode()
        await resources.broker.publish(body, queue="render.report", persist=True)
    metrics = await (await client.get("/metrics", headers=BEARER)).text()
    assert 'resultflow_queue_messages{queue="render.report"} 3' in metrics
    assert 'resultflow_queue_consumers{queue="render.report"} 0' in metrics
    assert 'resultflow_queue_messages{queue="convert.report.dlq"} 0' in metrics
    # The gateway's own consumers: live progress, and the keeper of every dead-letter queue.
    assert 'resultflow_queue_consumers{queue="gateway.report-status"} 1' in metrics
    assert 'resultflow_queue_consumers{queue="render.report.dlq"} 1' in metrics


async def test_the_operations_port_answers_prometheus_and_the_healthcheck_without_a_token(
    client: TestClient[Any, Any], settings: Settings, db: Database
) -> None:
    await db.reports.insert_one(report_document(status="delivered"))
    ((_, record),) = read_records(settings.work_dir)
    assert (record.name, record.service, record.pid) == ("gateway", "gateway", os.getpid())
    async with aiohttp.ClientSession() as http:
        async with http.get(record.health_url + "/readyz") as ready:
            assert ready.status == 200
            assert await ready.json() == {"status": "ok", "mongodb": True, "broker": True}
        async with http.get(record.metrics_url) as response:
            assert response.status == 200
            metrics = await response.text()
    assert 'resultflow_reports{status="delivered"} 1' in metrics
    assert 'resultflow_ready{check="mongodb"} 1' in metrics
    assert "process_resident_memory_bytes" in metrics
