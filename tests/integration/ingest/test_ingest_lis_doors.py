"""The LIS doors of ingest against real RabbitMQ and the MongoDB-protocol server: an HL7 v2
ORU^R01 over a real MLLP socket (AA only once published; AE naming the problem), and a FHIR
Bundle published straight onto RabbitMQ as `IngestFhirBundle`."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hl7.mllp

from contracts.v1 import IngestFhirBundle, Message
from services.infra.broker import publish
from services.infra.database import Database
from services.infra.service import Resources
from services.ingest.main import create_app
from services.ingest.mllp import MllpListener
from tests.support import drain, eventually

DATA = Path(__file__).parents[2] / "data"


async def send_over_mllp(port: int, raw: bytes) -> list[str]:
    """Send one message as an LIS does and return the ACK's segments."""
    reader, writer = await hl7.mllp.open_hl7_connection("127.0.0.1", port, encoding="utf-8")
    try:
        writer.writeblock(raw)
        await writer.drain()
        reply: bytes = await reader.readblock()
    finally:
        writer.close()
    return reply.decode("utf-8").split("\r")


async def listening(resources: Resources) -> tuple[Any, int]:
    async def send(message: Message) -> None:
        await publish(resources.broker, message)

    listener = MllpListener(send, "demo-lab", "GB")
    server = await listener.start("127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_an_oru_over_mllp_is_acked_aa_and_becomes_a_stored_report(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    resources = make_resources("ingest")
    async with create_app(resources):
        server, port = await listening(resources)
        async with server:
            ack = await send_over_mllp(port, (DATA / "hl7" / "oru_r01_v251.hl7").read_bytes())
        assert ack[1] == "MSA|AA|MSG00001"
        report = await eventually(lambda: db.reports.find_one({"source.message_id": "MSG00001"}))
    assert report["patient"]["name"] == "José María Núñez"
    assert report["patient"]["phone"] == "+447911123456"
    assert [r["value"] for r in report["results"]][:3] == ["13.2", "12.1", "< 0.3"]
    assert "Sample slightly haemolysed & re-checked" in report["comments"]


async def test_a_broken_oru_gets_ae_naming_the_field_and_publishes_nothing(
    make_resources: Callable[[str], Resources], amqp_url: str
) -> None:
    resources = make_resources("ingest")
    await resources.start()
    try:
        server, port = await listening(resources)
        async with server:
            raw = (DATA / "hl7" / "oru_r01_no_mobile.hl7").read_bytes()
            ack = await send_over_mllp(port, raw)
            garbage = await send_over_mllp(port, b"hello, this is not HL7")
    finally:
        await resources.broker.stop()
        await resources.close()
    assert ack[1].startswith("MSA|AE|MSG-BAD-1|PID-13: no mobile number")
    assert ack[2].startswith("ERR|PID^1^13^101|PID^1^13|101^Required field missing^HL70357|E")
    assert garbage[1].startswith("MSA|AR|")
    assert await drain(amqp_url, "ingest.lis-result") == []


async def test_a_correction_over_mllp_stores_a_new_version(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    raw = (DATA / "hl7" / "oru_r01_v23_correction.hl7").read_bytes()
    first = raw.replace(b"|7.9|", b"|6.1|").replace(b"|C\r", b"|F\r").replace(b"MSG-23-9", b"A1")
    resources = make_resources("ingest")
    async with create_app(resources):
        server, port = await listening(resources)
        async with server:
            assert (await send_over_mllp(port, first))[1] == "MSA|AA|A1"
            await eventually(lambda: db.reports.find_one({"source.message_id": "A1"}))
            assert (await send_over_mllp(port, raw))[1] == "MSA|AA|MSG-23-9"
        newer = await eventually(
            lambda: db.reports.find_one({"source.message_id": "MSG-23-9", "version": 2})
        )
    assert newer["results"][0]["value"] == "7.9"


async def test_a_fhir_bundle_published_on_rabbitmq_becomes_the_same_report(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    bundle = json.loads((DATA / "fhir" / "bundle_collection.json").read_text(encoding="utf-8"))
    resources = make_resources("ingest")
    async with create_app(resources):
        message = IngestFhirBundle(
            correlation_id=uuid.uuid4().hex,
            message_id="fhir-bundle-0001",
            lab_id="demo-lab",
            bundle=bundle,
        )
        await publish(resources.broker, message)
        report = await eventually(
            lambda: db.reports.find_one({"source.accession": "ACC-FHIR-0001"})
        )
    assert report["patient"]["name"] == "Zoë Østergaard"
    assert [r["flag"] for r in report["results"]] == ["H", "", "NEG"]
    assert report["correlation_id"] == message.correlation_id
