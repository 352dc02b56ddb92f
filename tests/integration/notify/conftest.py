"""Fixtures for notify's tests: the fake Twilio and the fake Africa's Talking (local servers
speaking their real APIs)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.infra.settings import Settings
from tests.fake_africastalking import FakeAfricasTalking
from tests.fake_twilio import FakeTwilio


@pytest.fixture
async def twilio(settings: Settings) -> AsyncIterator[FakeTwilio]:
    """Notify sends through the fake Twilio with these `settings`."""
    async with FakeTwilio() as fake:
        settings.sms_provider = "twilio"
        settings.twilio_base_url = fake.base_url
        settings.twilio_account_sid = fake.account_sid
        settings.twilio_auth_token = fake.auth_token
        settings.twilio_from = "+447700900999"
        yield fake


@pytest.fixture
async def africastalking(settings: Settings) -> AsyncIterator[FakeAfricasTalking]:
    """Notify sends through the fake Africa's Talking with these `settings` (alone; a test
    of failover names both: `settings.sms_provider = "twilio,africastalking"`)."""
    async with FakeAfricasTalking() as fake:
        settings.sms_provider = "africastalking"
        settings.africastalking_base_url = fake.base_url
        settings.africastalking_username = fake.username
        settings.africastalking_api_key = fake.api_key
        settings.africastalking_sender = "LABRESULTS"
        settings.africastalking_callback_secret = "at-callback-" + fake.api_key[-12:]
        yield fake
