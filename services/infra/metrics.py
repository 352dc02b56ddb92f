"""Every Prometheus metric ResultFlow exports, in one place (prometheus-client's default
registry), so the alert rules in deploy/prometheus can be checked against what exists.

Each service process serves its own figures on `/metrics` (services/infra/health.py); the
gateway also serves the stored counts (reports by status, stuck reports, dead letters), made
from MongoDB at most once per `metrics_cache_seconds`. Labels never carry patient data: only
service names, message types, statuses, queue names and outcomes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.registry import CollectorRegistry

# No `_created` series: a scrape carries the figures, not when each label first appeared.
disable_created_metrics()

# Seconds: a handled message, a conversion, a report's stage (from seconds to hours).
HANDLING_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
STAGE_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 6 * 3600.0, 86400.0)

# --- every process (services/infra/health.py) -------------------------------------------
READY = Gauge(
    "resultflow_ready",
    "1 when a readiness check passed at the last scrape (mongodb, broker, libreoffice), else 0.",
    ["check"],
)

# --- every consumer (services/infra/consumer.py) -------------------------------------------
MESSAGES_HANDLED = Counter(
    "resultflow_messages_handled",
    "Messages handled and acknowledged, by consuming service and message type.",
    ["service", "message_type"],
)
MESSAGES_FAILED = Counter(
    "resultflow_messages_failed",
    "Messages that failed, by service, message type and what happened: invalid (not the "
    "contract, dead-lettered), permanent (dead-lettered), retried, gave_up (dead-lettered), "
    "contended (its report held by another transaction: tried again, no delivery counted).",
    ["service", "message_type", "outcome"],
)
HANDLING_SECONDS = Histogram(
    "resultflow_message_handling_seconds",
    "Time to handle one message, by service and message type.",
    ["service", "message_type"],
    buckets=HANDLING_BUCKETS,
)

# --- the transactional outbox (services/infra/outbox.py) -----------------------------------
OUTBOX_PUBLISH_FAILURES = Counter(
    "resultflow_outbox_publish_failures",
    "Outbox messages RabbitMQ did not take (unroutable and returned, nacked, or no answer); "
    "each stays stored for the relay. By who tried: writer (right after its commit) or relay.",
    ["path"],
)

# --- the report's state machine (services/infra/reports.py) ---------------------------------
STAGE_SECONDS = Histogram(
    "resultflow_stage_seconds",
    "Time a report spent before reaching a status, by the status reached (rendered: from "
    "received to rendered, converted: from rendered to converted, ...).",
    ["stage"],
    buckets=STAGE_BUCKETS,
)

# --- convert ------------------------------------------------------------------------------
CONVERSIONS = Counter(
    "resultflow_conversions",
    "Documents given to LibreOffice, by outcome: converted, rejected (not a convertible "
    ".docx), failed (LibreOffice failed and was restarted).",
    ["outcome"],
)
CONVERSION_SECONDS = Histogram(
    "resultflow_conversion_seconds",
    "Time LibreOffice took for one .docx to PDF conversion that succeeded.",
    buckets=HANDLING_BUCKETS,
)
LIBREOFFICE_RESTARTS = Counter(
    "resultflow_libreoffice_restarts",
    "LibreOffice processes restarted by a convert worker, by reason (recycle, timeout, "
    "not running, or the error's kind).",
    ["reason"],
)

# --- notify -------------------------------------------------------------------------------
SMS = Counter(
    "resultflow_sms",
    "SMS sends by outcome: sent, failed (the provider refused), outcome_unknown (a send "
    "interrupted: a person must check), not_sent (opted out).",
    ["outcome"],
)

# --- gateway: the patient portal ----------------------------------------------------------
PORTAL_CHECKS = Counter(
    "resultflow_portal_checks",
    "Second checks on the patient portal, by outcome: passed, failed.",
    ["outcome"],
)
PORTAL_LOCKOUTS = Counter(
    "resultflow_portal_lockouts",
    "Access links locked after too many failed second checks.",
)

# --- gateway: counted from MongoDB and the broker (services/gateway/ops.py) ------------------
REPORTS = Gauge("resultflow_reports", "Reports by status.", ["status"])
BATCHES = Gauge("resultflow_batches", "Uploaded batches by status.", ["status"])
PORTAL_EVENTS = Gauge(
    "resultflow_portal_events", "Audited patient portal events by action.", ["action"]
)
PDF_INTEGRITY_FAILURES = Gauge(
    "resultflow_pdf_integrity_failures",
    "Report PDFs refused: stored SHA-256 mismatch.",
)
REPORTS_STUCK = Gauge(
    "resultflow_reports_stuck",
    "Reports not moved on for longer than their stage allows, by where they stopped.",
    ["status"],
)
DEAD_LETTERS = Gauge(
    "resultflow_dead_letters",
    "Dead-lettered messages waiting for a person, by queue.",
    ["queue"],
)
QUEUE_MESSAGES = Gauge(
    "resultflow_queue_messages",
    "Messages ready in a RabbitMQ queue (its depth), by queue (dead-letter queues too).",
    ["queue"],
)
QUEUE_CONSUMERS = Gauge(
    "resultflow_queue_consumers", "Consumers attached to a RabbitMQ queue.", ["queue"]
)


def exported_names(registry: CollectorRegistry = REGISTRY) -> set[str]:
    """Every series name `registry`'s metrics export, with or without samples yet (a
    counter's `_total`, a histogram's `_bucket`, `_sum` and `_count`)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    return {
        family.name + suffix
        for family in registry.collect()
        for suffix in suffixes.get(family.type, ("",))
    }


def set_counts(gauge: Gauge, counts: Mapping[str, int], known: Sequence[str]) -> None:
    """`gauge` by label: every known value (0 when absent), and any other present one."""
    gauge.clear()
    for value in [*known, *sorted(set(counts) - set(known))]:
        gauge.labels(value).set(counts.get(value, 0))


def observe_stage(stage: str, report: Mapping[str, Any]) -> None:
    """`report` (as read before the change) reached `stage`: the time since its last status
    change (its history's last entry; else its `updated_at`). MongoDB gives naive UTC."""
    history = report.get("history") or []
    last = history[-1] if history and isinstance(history[-1], Mapping) else {}
    since = last.get("at") or report.get("updated_at")
    if not isinstance(since, datetime):
        return
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    STAGE_SECONDS.labels(stage).observe(max((datetime.now(UTC) - since).total_seconds(), 0.0))
