"""The portal's second checks and lockouts show in the gateway's metrics, as Prometheus reads
them from its operations port."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from services.infra.process_registry import read_records
from services.infra.service import Resources
from services.infra.settings import Settings
from tests.integration.gateway.test_gateway_portal import notified_report, submit_date

CHECKS = "resultflow_portal_checks_total"


async def figures(settings: Settings) -> dict[str, float]:
    ((_, record),) = read_records(settings.work_dir)
    async with aiohttp.ClientSession() as http, http.get(record.metrics_url) as response:
        text = await response.text()
    wanted = {
        f'{CHECKS}{{outcome="passed"}}': "passed",
        f'{CHECKS}{{outcome="failed"}}': "failed",
        "resultflow_portal_lockouts_total": "lockouts",
    }
    found = {"passed": 0.0, "failed": 0.0, "lockouts": 0.0}
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        if series in wanted:
            found[wanted[series]] = float(value)
    return found


async def test_passed_and_failed_checks_and_a_lockout_are_counted(
    client: TestClient[Any, Any], resources: Resources, settings: Settings
) -> None:
    before = await figures(settings)
    _, token = await notified_report(resources)
    assert (await submit_date(client, token, day="17", month="5", year="1980"))[0] == 200
    _, locked = await notified_report(resources)
    for _ in range(5):
        await submit_date(client, locked, day="1", month="1", year="1990")

    after = await figures(settings)
    assert after["passed"] - before["passed"] == 1
    assert after["failed"] - before["failed"] == 5
    assert after["lockouts"] - before["lockouts"] == 1
