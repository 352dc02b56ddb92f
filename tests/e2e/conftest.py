from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.devstack import AdminClient
from services.gateway.adapters import create_user
from services.infra.database import Database, connect, ensure_indexes
from services.launcher import Stack, local_settings

PASSWORD = "correct horse battery staple"


@dataclass
class System:
    """Every service running as its own process, and a way in as an admin."""

    base_url: str
    db: Database
    stack: Stack

    async def upload(self, filename: str, data: bytes) -> str:
        admin = AdminClient(self.base_url)
        try:
            await admin.login("admin", PASSWORD)
            return await admin.upload(filename, data)
        finally:
            await admin.close()


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
