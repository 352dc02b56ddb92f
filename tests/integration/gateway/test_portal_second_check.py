"""The portal asking each lab's second check: the receipt PIN and the texted code open the
report like the date of birth does, with the same attempt counter, lock and audit trail."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from contracts.v1 import utcnow
from services.gateway.accounts_store import ApiTokens
from services.infra import second_check
from services.infra.access_codes import AccessCodes
from services.infra.database import Database
from services.infra.opt_outs import Keyword, OptOuts
from services.infra.service import Resources
from tests.integration.gateway.test_gateway_portal import notified_report
from tests.support import csrf_from, drain

PIN = "480213"
PHONE = "+447700900123"


async def report_asking(resources: Resources, check: str, **fields: Any) -> tuple[str, str]:
    """A texted report whose link asks `check` (a PIN report carries PIN's keyed hash)."""
    report_id, token = await notified_report(resources, **fields)
    update: dict[str, Any] = {"access.check": check, "patient.phone": PHONE}
    if check == "pin":
        secret = resources.settings.second_check_secret
        update["pin_hash"] = second_check.keyed_hash(secret, "pin", PIN)
    await resources.db.reports.update_one({"_id": report_id}, {"$set": update})
    return report_id, token


async def answer(client: TestClient[Any, Any], token: str, **fields: str) -> tuple[int, str]:
    csrf_token = await csrf_from(client, f"/r/{token}")
    response = await client.post(
        f"/r/{token}", data={"csrf_token": csrf_token, **fields}, allow_redirects=False
    )
    return response.status, await response.text()


async def texted_code(resources: Resources, report_id: str, token_hash: str) -> str:
    """What notify does for a SendAccessCode: make a code, keep its keyed hash (the notify
    side, texting it through the provider, is tested in tests/integration/notify)."""
    code = second_check.new_code()
    secret = resources.settings.second_check_secret
    await AccessCodes(resources.db).store(
        report_id,
        "request-1",
        second_check.keyed_hash(secret, "code", code),
        token_hash,
        utcnow() + second_check.CODE_TTL,
    )
    return code


async def audited(db: Database, report_id: str) -> list[tuple[str, str | None]]:
    return [
        (entry["action"], entry["detail"].get("check"))
        async for entry in db.audit.find({"report_id": report_id}).sort("seq", 1)
    ]


# --- PIN ------------------------------------------------------------------------------------


async def test_a_pin_link_asks_for_the_receipt_pin_with_a_numeric_field(
    client: TestClient[Any, Any], resources: Resources
) -> None:
    _, token = await report_asking(resources, "pin")
    page = await (await client.get(f"/r/{token}")).text()
    assert "enter the PIN printed on the receipt" in page
    assert re.search(r'<label for="pin">PIN from your receipt</label>', page)
    field = re.search(r"<input id=\"pin\"[^>]*>", page)
    assert field and 'inputmode="numeric"' in field.group(0)
    assert 'name="day"' not in page


async def test_the_right_pin_opens_the_report_and_is_audited_as_a_pin_check(
    client: TestClient[Any, Any], resources: Resources, db: Database
) -> None:
    report_id, token = await report_asking(resources, "pin")
    status, _ = await answer(client, token, pin="48 02 13")
    assert status == 303
    assert (await client.get("/portal/report")).status == 200
    assert ("portal.check_passed", "pin") in await audited(db, report_id)


async def test_five_wrong_pins_lock_the_link_and_the_right_pin_no_longer_opens_it(
    client: TestClient[Any, Any], resources: Resources, db: Database
) -> None:
    report_id, token = await report_asking(resources, "pin")
    # Not a PIN at all: said so, and no attempt taken.
    status, page = await answer(client, token, pin="12")
    assert status == 400 and "4 to 8 digits" in page
    for left in (4, 3, 2, 1):
        status, page = await answer(client, token, pin="111111")
        assert status == 400
        assert f"That PIN does not match our records. {left} attempt" in page
    csrf_token = await csrf_from(client, f"/r/{token}")
    status, page = await answer(client, token, pin="111111")
    assert status == 403 and "Too many attempts" in page
    right = await client.post(f"/r/{token}", data={"csrf_token": csrf_token, "pin": PIN})
    assert right.status == 403 and "Too many attempts" in await right.text()
    assert (await client.get("/portal/report", allow_redirects=False)).status == 403
    assert await audited(db, report_id) == [
        *[("portal.check_failed", "pin")] * 4,
        ("portal.locked", "pin"),
        ("portal.check_refused", None),
    ]


async def test_fifty_parallel_wrong_pins_are_exactly_five_attempts(
    client: TestClient[Any, Any], resources: Resources, db: Database
) -> None:
    report_id, token = await report_asking(resources, "pin")
    csrf_token = await parallel_wrong_guesses(client, db, report_id, token, {"pin": "999999"})
    right = await client.post(f"/r/{token}", data={"csrf_token": csrf_token, "pin": PIN})
    assert right.status == 403 and "Too many attempts" in await right.text()


async def parallel_wrong_guesses(
    client: TestClient[Any, Any],
    db: Database,
    report_id: str,
    token: str,
    wrong: dict[str, str],
) -> str:
    """50 wrong answers at once; returns the form token they used."""
    csrf_token = await csrf_from(client, f"/r/{token}")

    async def guess() -> int:
        response = await client.post(f"/r/{token}", data={"csrf_token": csrf_token, **wrong})
        await response.read()
        return response.status

    statuses = await asyncio.gather(*(guess() for _ in range(50)))
    assert statuses.count(400) == 4 and statuses.count(403) == 46
    report = await db.reports.find_one({"_id": report_id})
    assert report and report["access"]["failed_attempts"] == 5 and report["access"]["locked"]
    actions = [action for action, _ in await audited(db, report_id)]
    assert sorted(actions) == (
        ["portal.check_failed"] * 4 + ["portal.check_refused"] * 45 + ["portal.locked"]
    )
    return csrf_token


# --- texted code ----------------------------------------------------------------------------


async def test_a_code_link_offers_to_text_a_code_and_asks_for_it_as_a_one_time_code(
    client: TestClient[Any, Any], resources: Resources
) -> None:
    _, token = await report_asking(resources, "sms_code")
    page = await (await client.get(f"/r/{token}")).text()
    assert "we text a 6-digit code to your mobile phone" in page
    assert f'action="/r/{token}/code"' in page and "Text me a code" in page
    field = re.search(r"<input id=\"code\"[^>]*>", page)
    assert field and 'autocomplete="one-time-code"' in field.group(0)
    assert 'inputmode="numeric"' in field.group(0)
    assert '<label for="code">Code from the text message</label>' in page


async def test_text_me_a_code_asks_notify_once_and_the_page_says_a_code_is_coming(
    client: TestClient[Any, Any], resources: Resources, db: Database, amqp_url: str
) -> None:
    report_id, token = await report_asking(resources, "sms_code")
    csrf_token = await csrf_from(client, f"/r/{token}")
    response = await client.post(f"/r/{token}/code", data={"csrf_token": csrf_token})
    assert response.status == 200 and response.url.query.get("code") == "sent"
    page = await response.text()
    assert "We have texted a code to your mobile phone" in page
    assert "Text me a new code" in page
    [command] = await drain(amqp_url, "notify.access-code")
    assert command["report_id"] == report_id and command["request_id"]
    detail = (await db.audit.find_one({"action": "portal.code_requested"}) or {})["detail"]
    assert detail["request_id"] == command["request_id"]


async def test_a_code_request_without_the_form_token_sends_nothing(
    client: TestClient[Any, Any], resources: Resources, amqp_url: str
) -> None:
    _, token = await report_asking(resources, "sms_code")
    await client.get(f"/r/{token}")
    response = await client.post(f"/r/{token}/code", data={"csrf_token": "forged"})
    assert response.status == 403
    assert await drain(amqp_url, "notify.access-code") == []


async def test_codes_are_texted_at_most_three_times_an_hour_per_link(
    client: TestClient[Any, Any], resources: Resources, db: Database, amqp_url: str
) -> None:
    report_id, token = await report_asking(resources, "sms_code")
    csrf_token = await csrf_from(client, f"/r/{token}")

    async def ask() -> int:
        response = await client.post(f"/r/{token}/code", data={"csrf_token": csrf_token})
        await response.read()
        return response.status

    statuses = await asyncio.gather(*(ask() for _ in range(8)))
    assert sorted(statuses) == [200] * 3 + [429] * 5
    assert len(await drain(amqp_url, "notify.access-code")) == 3
    refused = await db.audit.count_documents(
        {"action": "portal.code_refused", "report_id": report_id}
    )
    assert refused == 5
    # An hour later the link may ask again.
    earlier = utcnow() - timedelta(hours=1, minutes=1)
    await db.access_codes.update_one({"_id": report_id}, {"$set": {"sends": [earlier] * 3}})
    assert await ask() == 200


async def test_an_opted_out_number_is_told_the_code_cannot_be_texted_and_given_the_labs_phone(
    client: TestClient[Any, Any], resources: Resources, amqp_url: str
) -> None:
    _, token = await report_asking(resources, "sms_code")
    await OptOuts(resources.db).record(
        PHONE, Keyword.STOP, utcnow(), source="inbound_sms", word="STOP"
    )
    csrf_token = await csrf_from(client, f"/r/{token}")
    response = await client.post(f"/r/{token}/code", data={"csrf_token": csrf_token})
    page = await response.text()
    assert response.status == 409
    assert "We cannot text you a code" in page and resources.settings.lab_phone in page
    assert await drain(amqp_url, "notify.access-code") == []


async def test_the_texted_code_opens_the_report_once(
    client: TestClient[Any, Any], resources: Resources, db: Database
) -> None:
    report_id, token = await report_asking(resources, "sms_code")
    report = await db.reports.find_one({"_id": report_id})
    assert report
    code = await texted_code(resources, report_id, report["access"]["token_hash"])
    status, _ = await answer(client, token, code=f"{code[:3]} {code[3:]}")
    assert status == 303
    assert (await client.get("/portal/report")).status == 200
    assert ("portal.check_passed", "sms_code") in await audited(db, report_id)
    # Used: the same code does not open it again (and counts as a wrong attempt).
    status, page = await answer(client, token, code=code)
    assert status == 400 and "That code is wrong, used or expired. 4 attempts left." in page


async def test_an_expired_code_or_one_for_an_older_link_opens_nothing(
    client: TestClient[Any, Any], resources: Resources, db: Database
) -> None:
    report_id, token = await report_asking(resources, "sms_code")
    report = await db.reports.find_one({"_id": report_id})
    assert report
    code = await texted_code(resources, report_id, report["access"]["token_hash"])
    past = utcnow() - timedelta(seconds=1)
    await db.access_codes.update_one({"_id": report_id}, {"$set": {"expires_at": past}})
    status, _ = await answer(client, token, code=code)
    assert status == 400
    other = await texted_code(resources, report_id, "the-hash-of-an-older-link")
    status, _ = await answer(client, token, code=other)
    assert status == 400
    report = await db.reports.find_one({"_id": report_id})
    assert report and report["access"]["failed_attempts"] == 2


async def test_fifty_parallel_wrong_codes_are_exactly_five_attempts(
    client: TestClient[Any, Any], resources: Resources, db: Database
) -> None:
    report_id, token = await report_asking(resources, "sms_code")
    report = await db.reports.find_one({"_id": report_id})
    assert report
    code = await texted_code(resources, report_id, report["access"]["token_hash"])
    wrong = "000000" if code != "000000" else "111111"
    csrf_token = await parallel_wrong_guesses(client, db, report_id, token, {"code": wrong})
    right = await client.post(f"/r/{token}", data={"csrf_token": csrf_token, "code": code})
    assert right.status == 403 and "Too many attempts" in await right.text()


async def test_a_locked_code_link_texts_no_more_codes(
    client: TestClient[Any, Any], resources: Resources, db: Database, amqp_url: str
) -> None:
    report_id, token = await report_asking(resources, "sms_code")
    csrf_token = await csrf_from(client, f"/r/{token}")
    await db.reports.update_one({"_id": report_id}, {"$set": {"access.locked": True}})
    response = await client.post(f"/r/{token}/code", data={"csrf_token": csrf_token})
    assert response.status == 403 and "Too many attempts" in await response.text()
    assert await drain(amqp_url, "notify.access-code") == []


# --- what staff see -------------------------------------------------------------------------


async def test_staff_see_which_check_a_link_asks_and_why_on_the_page_and_in_the_api(
    admin: TestClient[Any, Any], resources: Resources, db: Database
) -> None:
    report_id, _ = await report_asking(resources, "date_of_birth")
    note = second_check.NO_PIN_NOTE
    await db.reports.update_one({"_id": report_id}, {"$set": {"access.check_note": note}})
    page = await (await admin.get(f"/reports/{report_id}")).text()
    assert "<dt>Second check</dt><dd>Date of birth" in page and note in page
    _, token = await ApiTokens(db).create("admin", "tests")
    response = await admin.get(
        f"/api/v1/reports/{report_id}", headers={"Authorization": f"Bearer {token}"}
    )
    view = await response.json()
    assert (view["second_check"], view["second_check_note"]) == ("date_of_birth", note)
    assert "pin_hash" not in page and "token_hash" not in json.dumps(view)


async def test_a_patient_who_picked_a_language_keeps_it_after_asking_for_a_code(
    client: TestClient[Any, Any], resources: Resources, amqp_url: str
) -> None:
    _, token = await report_asking(resources, "sms_code")
    csrf_token = await csrf_from(client, f"/r/{token}?lang=fr")
    page = await (await client.get(f"/r/{token}?lang=fr")).text()
    assert f'action="/r/{token}/code?lang=fr"' in page
    response = await client.post(f"/r/{token}/code?lang=fr", data={"csrf_token": csrf_token})
    assert response.status == 200
    assert (response.url.query.get("code"), response.url.query.get("lang")) == ("sent", "fr")
    assert '<html lang="fr"' in await response.text()
    assert len(await drain(amqp_url, "notify.access-code")) == 1
