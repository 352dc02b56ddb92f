from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devtools.launcher import Stack, local_settings
from services.gateway.accounts_store import create_user
from services.infra.database import connect, ensure_indexes
from tests.e2e.system import PASSWORD, System


@pytest.fixture
async def system(
    mongodb_uri: str, amqp_url: str, tmp_path: Path, empty_queues: None
) -> AsyncIterator[System]:
    database = f"e2e_{uuid.uuid4().hex[:8]}"
    settings = local_settings(mongodb_uri, amqp_url, database, tmp_path / "work")
    client, db = connect(settings)
    await ensure_indexes(db)
    await create_user(db, "admin", PASSWORD)
    stack = Stack(settings, tmp_path / "logs")
    try:
        stack.start()
        await stack.wait_ready()
        yield System(settings.public_base_url, db, stack)
    finally:
        stack.stop()
        await client.drop_database(settings.mongodb_database)
        await client.close()
