"""A correction racing its own report through the whole pipeline (ingest, render, convert
with a real LibreOffice, notify, each on its own broker connection): the corrected version
replaces the first before anything is sent, and the patient gets exactly one SMS, for it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack

from services.convert.main import create_app as convert_app
from services.infra.broker import publish
from services.infra.database import Database
from services.infra.service import Resources
from services.ingest.main import create_app as ingest_app
from services.notify.main import create_app as notify_app
from services.render.main import create_app as render_app
from tests.support import eventually, lis_message


async def test_a_correction_overtakes_its_report_in_the_pipeline_and_only_it_is_texted(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    apps = [
        ingest_app(make_resources("ingest")),
        render_app(make_resources("render")),
        convert_app(make_resources("convert")),
        notify_app(make_resources("notify")),
    ]
    publisher = make_resources("lis")
    await publisher.start()
    async with AsyncExitStack() as stack:
        for app in apps:
            await stack.enter_async_context(app)
        wrong = [{"test": "Potassium", "value": "9.9", "unit": "mmol/L", "flag": "H"}]
        right = [{"test": "Potassium", "value": "4.1", "unit": "mmol/L"}]
        await publish(publisher.broker, lis_message(message_id="M-1", results=wrong))
        # The correction follows while the first version is on its way to render and convert.
        await eventually(lambda: db.reports.find_one({"version": 1}), interval=0.01)
        await publish(publisher.broker, lis_message(message_id="M-2", results=right))
        await eventually(lambda: db.outbox.find_one({}), timeout=60)
        await asyncio.sleep(2)  # time for a wrong second SMS, were one coming
    await publisher.broker.stop()
    await publisher.close()

    reports = await db.reports.find().sort("version").to_list()
    assert [(r["version"], r["status"]) for r in reports] == [(1, "superseded"), (2, "notified")]
    assert reports[1]["results"][0]["value"] == "4.1"
    [sms] = await db.outbox.find().to_list()
    assert "your report is ready" in sms["body"]  # the first SMS this patient gets
    assert await db.notifications.count_documents({"report_id": reports[0]["_id"]}) == 0
