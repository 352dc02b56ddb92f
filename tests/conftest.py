from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aio_pika
import pytest

from contracts import topology
from services.infra.database import Database, connect, ensure_indexes
from services.infra.process_registry import reap
from services.infra.service import Resources
from services.infra.settings import Settings, get_settings
from tests.support import mongodb_server, rabbitmq_vhost


@pytest.fixture(scope="session", autouse=True)
def _reap_what_killed_test_runs_left(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A killed test run's services end with it (PR_SET_PDEATHSIG); any that outlived it is
    recorded under that run's temporary folder, and ends here, at the next run's start. The
    processes of a run still going (a colleague's) are left alone."""
    for work_dir in tmp_path_factory.getbasetemp().parent.glob("pytest-*/*/work"):
        reap(work_dir, grace=5)


@pytest.fixture(scope="session")
def mongodb_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if uri := os.environ.get("TEST_MONGODB_URI"):
        yield uri
        return
    with mongodb_server(tmp_path_factory.mktemp("mongodb") / "data") as uri:
        yield uri


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    if url := os.environ.get("TEST_AMQP_URL"):
        yield url
        return
    with rabbitmq_vhost() as url:
        yield url


@pytest.fixture
def settings(mongodb_uri: str, amqp_url: str, tmp_path: Path) -> Settings:
    return Settings(
        MONGODB_URI=mongodb_uri,
        AMQP_URL=amqp_url,
        mongodb_database=f"test_{uuid.uuid4().hex[:10]}",
        work_dir=tmp_path / "work",
        convert_timeout_seconds=30,
        retry_backoff_seconds=0.05,  # retries are tested, not waited for
        sms_retry_backoff_seconds=0.05,
    )


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    client, database = connect(settings)
    await ensure_indexes(database)
    yield database
    await client.drop_database(settings.mongodb_database)
    await client.close()


@pytest.fixture
async def empty_queues(amqp_url: str) -> None:
    """Every test starts with no queue left over from the one before."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for queue in topology.QUEUES:
            for name in (queue.name, queue.dead_letter_queue):
                await channel.queue_delete(name)


@pytest.fixture
def make_resources(settings: Settings, empty_queues: None) -> Callable[[str], Resources]:
    """A fresh set of resources (own broker, own MongoDB client) for one service under test."""
    from services.infra.broker import make_broker

    def make(service: str) -> Resources:
        client, database = connect(settings)
        return Resources(settings, make_broker(settings), client, database)

    return make


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """`resultflow ...` run in this test reads these settings (its MongoDB database,
    RabbitMQ vhost and lab) from the environment, as an operator's shell would give them."""
    for name, value in (
        ("MONGODB_URI", settings.mongodb_uri),
        ("AMQP_URL", settings.amqp_url),
        ("RESULTFLOW_MONGODB_DATABASE", settings.mongodb_database),
        ("RESULTFLOW_LAB_ID", settings.lab_id),
    ):
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()
