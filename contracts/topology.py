"""The RabbitMQ topology: the one place that names exchanges, queues and routing keys.

Every message is published persistent and confirmed, with `mandatory` set, to one topic
exchange under its routing key (which carries the version, `render.report.v1`). Each
consumer reads a durable quorum queue with an explicit delivery limit; a message rejected,
or delivered too often, is dead-lettered into `<queue>.dlq`, at least once: RabbitMQ keeps it
in the source queue until the dead-letter queue has confirmed it (which needs the queue to
refuse publishes, not drop messages, when it is full). The gateway (`DEAD_LETTER_KEEPER`)
drains every dead-letter queue into the dashboard's dead-letter list and replays from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from contracts import v1

EXCHANGE = "resultflow"
DEAD_LETTER_EXCHANGE = "resultflow.dlx"
EXCHANGE_TYPE = "topic"  # both exchanges; durable
DELIVERY_LIMIT = 5
DEAD_LETTER_KEEPER = "gateway"

# The lab's LIS, as a publisher: it may publish only LIS-family intake commands, `ingest.`
# then `lis-`, `hl7-` or `fhir-` and a versioned name (`ingest.lis-result.v1`), never a
# command between services. The broker enforces it (`services.infra.broker_access`).
LIS = "the lab's LIS"
LIS_ROUTING_KEYS = r"ingest\.(lis|hl7|fhir)-[a-z0-9-]+\.v[0-9]+"


@dataclass(frozen=True)
class Queue:
    name: str
    routing_key: str
    consumer: str
    message: type[v1.Message]
    published_by: tuple[str, ...]  # who publishes it (documentation: docs/follow-one-report.md)
    arguments: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        arguments = {
            "x-queue-type": "quorum",
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
            "x-dead-letter-routing-key": self.dead_letter_queue,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
        object.__setattr__(self, "arguments", arguments)

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.name}.dlq"


QUEUES: tuple[Queue, ...] = (
    Queue("ingest.batch", v1.IngestBatch.routing_key, "ingest", v1.IngestBatch, ("gateway",)),
    Queue(
        "ingest.lis-result",
        v1.IngestLisResult.routing_key,
        "ingest",
        v1.IngestLisResult,
        (LIS, "ingest"),  # ingest: its HL7 v2 MLLP listener
    ),
    Queue(
        "ingest.fhir-bundle",
        v1.IngestFhirBundle.routing_key,
        "ingest",
        v1.IngestFhirBundle,
        (LIS, "gateway"),  # gateway: POST /fhir/r4/Bundle
    ),
    # gateway: a staff retry of a report that failed at this stage.
    Queue(
        "render.report",
        v1.RenderReport.routing_key,
        "render",
        v1.RenderReport,
        ("ingest", "gateway"),
    ),
    Queue(
        "convert.report",
        v1.ConvertReport.routing_key,
        "convert",
        v1.ConvertReport,
        ("render", "gateway"),
    ),
    Queue(
        "notify.patient",
        v1.NotifyPatient.routing_key,
        "notify",
        v1.NotifyPatient,
        # convert when the PDF is ready; gateway when staff release a report; notify's
        # scheduler when a hold ends (or a release's message was lost).
        ("convert", "gateway", "notify"),
    ),
    Queue("notify.sms-receipt", v1.SmsReceipt.routing_key, "notify", v1.SmsReceipt, ("gateway",)),
    # gateway: a patient asked the portal to text the code its link asks for.
    Queue(
        "notify.access-code",
        v1.SendAccessCode.routing_key,
        "notify",
        v1.SendAccessCode,
        ("gateway",),
    ),
    Queue(
        "gateway.report-status",
        v1.ReportStatusChanged.routing_key,
        "gateway",
        v1.ReportStatusChanged,
        ("ingest", "render", "convert", "notify", "gateway"),
    ),
)

DEAD_LETTER_QUEUE_ARGUMENTS: dict[str, Any] = {"x-queue-type": "quorum"}


def queue_named(name: str) -> Queue | None:
    return next((queue for queue in QUEUES if queue.name == name), None)


def queue_for(message: type[v1.Message]) -> Queue:
    """The queue that consumes `message`."""
    return next(queue for queue in QUEUES if queue.message is message)
