"""What every service's main.py starts from: settings, logging, broker, MongoDB, files, reports."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from faststream import FastStream
from faststream.rabbit import RabbitBroker
from pymongo import AsyncMongoClient

from services.infra.broker import check_topology, declare_topology, make_broker
from services.infra.database import Database, connect, ensure_indexes
from services.infra.files import FileStore
from services.infra.health import Check, HealthServer, broker_check, database_check
from services.infra.logging import app_logger, configure_logging
from services.infra.outbox import RELAY_EVERY_SECONDS, Outbox
from services.infra.periodic import Periodic
from services.infra.reports import Reports
from services.infra.settings import Settings, get_settings


@dataclass
class Resources:
    settings: Settings
    broker: RabbitBroker
    client: AsyncMongoClient[dict[str, Any]]
    db: Database
    service: str = "service"  # its name in logs, metrics and `resultflow status`
    files: FileStore = field(init=False)
    reports: Reports = field(init=False)
    outbox: Outbox = field(init=False)

    def __post_init__(self) -> None:
        self.files = FileStore(self.db)
        self.reports = Reports(self.db, self.broker)
        self.outbox = Outbox(self.db, self.broker)
        # Publishes what a process died before publishing (`services.infra.outbox`).
        self._relay = Periodic("outbox.relay", self.outbox.relay, RELAY_EVERY_SECONDS)

    @classmethod
    def create(
        cls, service: str, settings: Settings | None = None, prefetch: int | None = None
    ) -> Resources:
        settings = settings or get_settings()
        configure_logging(service)
        client, db = connect(settings)
        return cls(settings, make_broker(settings, prefetch), client, db, service)

    def readiness_checks(self) -> dict[str, Check]:
        """What every service needs to do its work: MongoDB and the broker answering."""
        return {"mongodb": database_check(self.db), "broker": broker_check(self.broker)}

    async def start(self) -> None:
        """Connect, make sure indexes and the whole topology exist (or, where the setup job
        made them, that the topology is there)."""
        if self.settings.setup_on_start:
            await ensure_indexes(self.db)
        await self.broker.connect()
        if self.settings.setup_on_start:
            await declare_topology(self.broker, self.settings.amqp_url)
        else:
            await check_topology(self.broker)
        await self._relay.start()

    async def close(self) -> None:
        await self._relay.stop()
        await self.client.close()


def make_app(
    resources: Resources,
    on_startup: Sequence[Callable[[], Awaitable[None]]] = (),
    on_shutdown: Sequence[Callable[[], Awaitable[None]]] = (),
    checks: Mapping[str, Check] | None = None,
) -> FastStream:
    """The service's FastStream app, with its operations port (services/infra/health.py)
    answering from before it connects until it has stopped; `checks`: readiness beyond
    MongoDB and the broker (convert: its LibreOffice)."""
    health = HealthServer(
        resources.settings, resources.service, {**resources.readiness_checks(), **(checks or {})}
    )
    return FastStream(
        resources.broker,
        logger=app_logger(),
        on_startup=[health.start, resources.start, *on_startup],
        on_shutdown=[*on_shutdown, resources.close, health.stop],
    )
