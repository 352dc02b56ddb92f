"""The whole system as the end-to-end tests see it: every service as its own process."""

from __future__ import annotations

from dataclasses import dataclass

from devtools.admin_client import AdminClient
from devtools.launcher import Stack
from services.infra.database import Database
from tests.support import PASSWORD


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
