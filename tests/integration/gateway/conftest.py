"""Fixtures for the gateway tests in this folder: the app on real RabbitMQ and MongoDB."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.gateway.accounts_store import create_user
from services.gateway.main import create_app
from services.infra.database import Database
from services.infra.service import Resources
from tests.support import PASSWORD, log_in


@pytest.fixture
async def resources(make_resources: Callable[[str], Resources]) -> Resources:
    """The gateway's resources."""
    return make_resources("gateway")


@pytest.fixture
async def client(resources: Resources) -> AsyncIterator[TestClient[Any, Any]]:
    """A client of the gateway app running on `resources`."""
    async with TestClient(TestServer(create_app(resources))) as test_client:
        yield test_client


@pytest.fixture
async def admin(client: TestClient[Any, Any], db: Database) -> TestClient[Any, Any]:
    """The client, signed in as `admin`."""
    await create_user(db, "admin", PASSWORD)
    response = await log_in(client)
    assert response.status == 200 and response.url.path == "/"
    return client
