"""The SMS in the patient's language, through the notify service and a local Twilio: the
result SMS, the updated-report SMS and the reminder, with the link's end date as that
language writes it; a report without a language gets the lab's default."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from contracts.v1 import NotifyPatient, utcnow
from services.infra.broker import publish
from services.infra.database import Database
from services.infra.service import Resources
from services.infra.settings import Settings
from services.infra.tokens import new_token, token_hash
from services.notify import sms_text
from services.notify.main import create_app
from services.notify.provider_setup import make_provider
from services.notify.reminders import ReminderScheduler
from tests.fake_twilio import FakeTwilio
from tests.support import eventually, report_document

PHONE = "+447700900123"
LINK = re.compile(r"https?://\S+/r/[A-Za-z0-9_-]{43}")


def notify(report: dict[str, Any]) -> NotifyPatient:
    return NotifyPatient(correlation_id=report["correlation_id"], report_id=report["_id"])


async def texted(db: Database, report_id: str) -> dict[str, Any] | None:
    return await db.reports.find_one({"_id": report_id, "status": "notified"})


async def send(
    make_resources: Callable[[str], Resources], db: Database, **patient: str
) -> dict[str, Any]:
    report = report_document(
        status="converted", patient={"phone": PHONE, **patient}, pdf_file_id="0" * 24
    )
    if not patient:  # stored before reports had a language
        del report["patient"]["language"]
    await db.reports.insert_one(report)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        stored = await eventually(lambda: texted(db, report["_id"]))
    return stored


async def test_a_french_patient_is_texted_in_french_with_a_french_date(
    make_resources: Callable[[str], Resources], db: Database, twilio: FakeTwilio
) -> None:
    report = await send(make_resources, db, language="fr")

    [message] = twilio.messages
    body = message["body"]
    link = LINK.search(body)
    assert link is not None
    # The longest French wording that fits one segment with this lab name and link.
    assert body == (
        f"ResultFlow Demo Laboratory : résultats disponibles sur {link[0]} "
        "(date de naissance à confirmer)"
    )
    assert report["patient"]["language"] == "fr"
    assert sms_text.fits_one_segment(body) and sms_text.sms_units(body)[0] == "gsm7"


async def test_a_patient_without_a_language_is_texted_in_the_lab_default(
    make_resources: Callable[[str], Resources],
    db: Database,
    settings: Settings,
    twilio: FakeTwilio,
) -> None:
    settings.default_language = "sw"

    await send(make_resources, db)

    [message] = twilio.messages
    assert message["body"].startswith("ResultFlow Demo Laboratory: ripoti yako")


async def test_the_reminder_reads_in_the_patient_s_spanish(
    make_resources: Callable[[str], Resources],
    db: Database,
    settings: Settings,
    twilio: FakeTwilio,
) -> None:
    settings.reminder_days_before_expiry = 3
    expires = utcnow() + timedelta(days=2)
    report = report_document(
        status="notified",
        patient={"phone": PHONE, "language": "es"},
        access={
            "token_hash": token_hash(new_token()),
            "expires_at": expires,
            "failed_attempts": 0,
            "locked": False,
        },
    )
    await db.reports.insert_one(report)
    resources = make_resources("notify")
    reminders = ReminderScheduler(resources, make_provider(resources.settings, resources.db))

    assert await reminders.tick() == 1

    [message] = twilio.messages
    assert message["body"].startswith("ResultFlow Demo Laboratory: ")
    assert "su informe le espera" in message["body"]
    assert sms_text.sms_date(expires, "es") in message["body"]
