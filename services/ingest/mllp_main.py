"""The HL7 v2 MLLP listener, ingest's second entry point and its own process:
`python -m services.ingest.mllp_main` (host and port: `RESULTFLOW_MLLP_HOST`/`_PORT`).

It only publishes (as ingest's broker user, to `ingest.lis-result`); the ingest workers store
and render what it accepted. It needs no database.
"""

from __future__ import annotations

import asyncio
import signal

import structlog

from contracts.v1 import Message
from services.infra.broker import check_topology, declare_topology, make_broker, publish
from services.infra.health import HealthServer, broker_check
from services.infra.logging import configure_logging
from services.infra.settings import Settings, get_settings
from services.ingest.mllp import MllpListener

log = structlog.get_logger()


async def run(settings: Settings, stop: asyncio.Event) -> None:
    broker = make_broker(settings)
    # Its operations port: it needs only the broker (services/infra/health.py).
    health = HealthServer(settings, "ingest-mllp", {"broker": broker_check(broker)})
    await health.start()
    await broker.connect()
    try:
        if settings.setup_on_start:
            await declare_topology(broker, settings.amqp_url)
        else:
            await check_topology(broker)

        async def send(message: Message) -> None:
            await publish(broker, message)

        listener = MllpListener(send, settings.lab_id, settings.default_region)
        server = await listener.start(settings.mllp_host, settings.mllp_port)
        log.info("mllp.listening", host=settings.mllp_host, port=settings.mllp_port)
        async with server:
            await stop.wait()
    finally:
        await broker.stop()
        await health.stop()


def main() -> None:
    configure_logging("ingest-mllp")
    settings = get_settings()

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run(settings, stop)

    asyncio.run(serve())


if __name__ == "__main__":
    main()
