"""The second check in a real browser: a patient on a phone asks for a texted code (the
gateway and notify running on real RabbitMQ and MongoDB, the code texted through a local
Twilio) and types it back in; staff see on the report page which check the link asks."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient

from services.gateway.accounts_store import create_user
from services.infra import second_check
from services.infra.service import Resources
from services.infra.settings import Settings
from services.notify.main import create_app as create_notify_app
from tests.axe import serious_violations
from tests.fake_twilio import FakeTwilio
from tests.integration.gateway.test_portal_browser import RESULTS
from tests.integration.gateway.test_portal_second_check import PHONE, report_asking
from tests.support import PASSWORD, browser_log_in, chromium, eventually

CODE = re.compile(r"\b(\d{6})\b")


async def test_a_patient_on_a_phone_asks_for_a_code_types_it_and_sees_the_results(
    client: TestClient[Any, Any],
    resources: Resources,
    settings: Settings,
    make_resources: Callable[[str], Resources],
) -> None:
    base_url = str(client.make_url("")).rstrip("/")
    _, token = await report_asking(resources, "sms_code", results=RESULTS)
    async with FakeTwilio() as twilio:
        settings.sms_provider = "twilio"
        settings.twilio_base_url = twilio.base_url
        settings.twilio_account_sid = twilio.account_sid
        settings.twilio_auth_token = twilio.auth_token
        settings.twilio_from = "+447700900999"
        async with create_notify_app(make_resources("notify")), chromium() as browser:
            page = await browser.new_page(viewport={"width": 390, "height": 844}, bypass_csp=True)
            await page.goto(f"{base_url}/r/{token}")
            assert "we text a 6-digit code" in await page.inner_text("main")
            assert await serious_violations(page) == []

            await page.get_by_role("button", name="Text me a code").click()
            notice = page.get_by_role("status")
            await notice.wait_for()
            assert "We have texted a code to your mobile phone" in await notice.inner_text()
            assert await serious_violations(page) == []

            await eventually(lambda: len(twilio.messages) == 1)
            [sms] = twilio.requests
            assert sms.form["To"] == PHONE
            code = CODE.search(sms.form["Body"])
            assert code, sms.form["Body"]

            field = page.get_by_label("Code from the text message")
            assert await field.get_attribute("autocomplete") == "one-time-code"
            await field.fill(code.group(1))
            await page.get_by_role("button", name="Show my results").click()
            await page.wait_for_url(re.compile(r"/portal/report$"))
            assert token not in page.url
            table = page.get_by_role("table", name="Your results")
            assert await table.get_by_text("Potassium").is_visible()
            # At phone size the page does not scroll sideways.
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390


async def test_staff_see_in_the_browser_which_check_a_link_asks_and_why(
    client: TestClient[Any, Any], resources: Resources
) -> None:
    await create_user(resources.db, "admin", PASSWORD)
    base_url = str(client.make_url("")).rstrip("/")
    report_id, _ = await report_asking(resources, "date_of_birth")
    note = second_check.NO_PIN_NOTE
    await resources.db.reports.update_one({"_id": report_id}, {"$set": {"access.check_note": note}})
    async with chromium() as browser:
        page = await browser.new_page(bypass_csp=True)
        await browser_log_in(page, base_url)
        await page.wait_for_url(f"{base_url}/")
        await page.goto(f"{base_url}/reports/{report_id}")
        facts = page.locator("dl.facts").first
        assert "Second check" in await facts.inner_text()
        assert await page.locator("#check-note").inner_text() == note
        assert await serious_violations(page) == []
