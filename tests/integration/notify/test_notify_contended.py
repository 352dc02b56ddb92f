"""Finding A (issue 12): notify SIGKILLed between its report update and the commit leaves that
transaction open on the server, holding the report, until MongoDB aborts it
(`transactionLifetimeLimitSeconds`, 60 s). The redelivered NotifyPatient finds the SMS sent
and only has to move the report on, which waits for that lock. Waiting inside the handler
held the queue and the message unacked for the whole minute, so every further kill of notify
counted another delivery: after five the message was dead-lettered with the report stuck at
`converted`. Now the change gives up after `CONTENDED_SECONDS` and the message goes back to
the queue as a new one: nothing waits behind it, no delivery is used up, and once the dead
transaction is gone the report is notified without a second SMS.

Real RabbitMQ, real MongoDB protocol; the dead process is a real process, SIGKILLed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable

from bson import Binary
from prometheus_client import REGISTRY

from contracts import topology
from contracts.v1 import NotifyPatient
from services.infra.broker import publish
from services.infra.database import Database
from services.infra.outbox import CONTENDED_SECONDS
from services.infra.service import Resources
from services.infra.settings import Settings
from services.notify.main import create_app
from tests.integration.notify.test_notify_service import (
    PHONE,
    insert_notification,
    insert_report,
    notify,
    queue_messages,
    report_in,
    settled,
)
from tests.support import eventually

OTHER_PHONE = "+447700900456"

# A process that opens a transaction, changes the report in it, says which session holds it,
# and waits: it is then SIGKILLed, as the soak's kill -9 struck notify mid-commit.
HOLDER = """
import sys, time
from pymongo import MongoClient
client = MongoClient(sys.argv[1])
session = client.start_session()
session.start_transaction()
client[sys.argv[2]].reports.update_one(
    {"_id": sys.argv[3]}, {"$set": {"status": "notified"}}, session=session
)
print(session.session_id["id"].hex(), flush=True)
time.sleep(600)
"""


def killed_holding(settings: Settings, report_id: str) -> Binary:
    """SIGKILL a process while its transaction holds `report_id`; the session id it left."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, settings.mongodb_uri, settings.mongodb_database, report_id],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        session_id = holder.stdout.readline().strip()
        assert session_id, "the holder died before its transaction held the report"
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    return Binary(bytes.fromhex(session_id), 4)


def contended_count() -> float:
    labels = {
        "service": "notify",
        "message_type": NotifyPatient.routing_key,
        "outcome": "contended",
    }
    return REGISTRY.get_sample_value("resultflow_messages_failed_total", labels) or 0.0


async def test_a_report_held_by_a_killed_process_transaction_neither_stalls_notify_nor_uses_up_deliveries(  # noqa: E501
    make_resources: Callable[[str], Resources], db: Database, settings: Settings, amqp_url: str
) -> None:
    queue = topology.queue_for(NotifyPatient)
    held = await insert_report(db)  # its SMS went out before notify was killed
    await insert_notification(db, held, "sent", provider_message_id="SM-before-kill")
    other = await insert_report(db, phone=OTHER_PHONE)
    session_id = await asyncio.to_thread(killed_holding, settings, held["_id"])
    contended_before = contended_count()

    resources = make_resources("notify")
    async with create_app(resources):
        started = asyncio.get_running_loop().time()
        await publish(resources.broker, notify(held))
        await publish(resources.broker, notify(other))
        # The patient behind the held report is texted within seconds, not after a minute.
        await eventually(lambda: report_in(db, other["_id"], "notified"), timeout=20)
        waited_for_other = asyncio.get_running_loop().time() - started
        # The held one was tried, given back to the queue, and is still waiting: not failed,
        # not dead-lettered.
        await eventually(lambda: contended_count() > contended_before, timeout=20)
        assert await report_in(db, held["_id"], "converted")
        assert queue_messages(amqp_url, queue.dead_letter_queue) == 0

        # The server ends the dead process's transaction (MongoDB does at 60 s; done here at
        # once): the report moves on, by the message still going round.
        await db.client.admin.command("killSessions", [{"id": session_id}])
        await eventually(lambda: report_in(db, held["_id"], "notified"), timeout=30)
        await settled(amqp_url, queue.name)

    assert waited_for_other < CONTENDED_SECONDS + 10, waited_for_other
    assert queue_messages(amqp_url, queue.dead_letter_queue) == 0
    # One SMS, to the other patient: the held report's patient was not texted again.
    texted = [sms["to"] for sms in await db.outbox.find().to_list()]
    assert texted == [OTHER_PHONE], texted
    assert PHONE not in texted
    report = await db.reports.find_one({"_id": held["_id"]}) or {}
    assert [step["status"] for step in report.get("history", [])].count("notified") == 1
