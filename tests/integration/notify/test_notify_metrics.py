"""What notify did shows on its metrics port: SMS by outcome, messages handled and failed by
type, and how long the report took to reach `notified`."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

from services.infra.broker import publish
from services.infra.database import Database
from services.infra.process_registry import read_records
from services.infra.service import Resources
from services.infra.settings import Settings
from services.notify.main import create_app
from tests.integration.notify.test_notify_service import insert_report, notify, report_in
from tests.support import eventually

SENT = 'resultflow_sms_total{outcome="sent"}'
FAILED = 'resultflow_sms_total{outcome="failed"}'
HANDLED = 'resultflow_messages_handled_total{message_type="notify.patient.v1",service="notify"}'
PERMANENT = (
    "resultflow_messages_failed_total"
    '{message_type="notify.patient.v1",outcome="permanent",service="notify"}'
)
NOTIFIED = 'resultflow_stage_seconds_count{stage="notified"}'


async def figures(url: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        text = await response.text()
    found = dict.fromkeys((SENT, FAILED, HANDLED, PERMANENT, NOTIFIED), 0.0)
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        if series in found:
            found[series] = float(value)
    return found


async def test_sms_outcomes_messages_handled_and_failed_and_stage_time_are_counted(
    make_resources: Callable[[str], Resources], db: Database, settings: Settings
) -> None:
    sent, unsendable = await insert_report(db), await insert_report(db, phone="not a number")
    resources = make_resources("notify")
    async with create_app(resources):
        ((_, record),) = read_records(settings.work_dir)
        before = await figures(record.metrics_url)
        await publish(resources.broker, notify(sent))
        await publish(resources.broker, notify(unsendable))
        await eventually(lambda: report_in(db, sent["_id"], "notified"))
        await eventually(lambda: report_in(db, unsendable["_id"], "failed"))

        async def both_counted() -> dict[str, float] | None:
            now = await figures(record.metrics_url)
            counted = now[HANDLED] > before[HANDLED] and now[PERMANENT] > before[PERMANENT]
            return now if counted else None

        after = await eventually(both_counted)
    # One handled and acked; the number that can never be texted failed permanently.
    assert after[HANDLED] - before[HANDLED] == 1
    assert after[PERMANENT] - before[PERMANENT] == 1
    assert after[SENT] - before[SENT] == 1
    assert after[FAILED] - before[FAILED] == 1
    assert after[NOTIFIED] - before[NOTIFIED] == 1
