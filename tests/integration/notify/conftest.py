"""Fixtures for notify's tests: the fake Twilio (a local server speaking its real API)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.infra.settings import Settings
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
