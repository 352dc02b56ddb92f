"""Pure decisions of the gateway's admin side: uploads, batch counts, the report page, metrics;
and the helpers every audience shares (token comparison, download names, log-safe paths).
Accounts and the portal have their own: `accounts_logic`, `portal_logic`.

No broker, database or web imports here: everything is a function of its arguments.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from prometheus_client import REGISTRY, generate_latest

from contracts import topology
from contracts.v1 import ReportStatus
from services.infra import metrics
from services.infra.documents import BatchStatus
from services.infra.report_status import STUCK_AFTER

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
REPORTS_PAGE_SIZE = 50
BATCHES_PAGE_SIZE = 50
REPORT_AUDIT_LIMIT = 100  # audit records of each kind the report page shows (the latest)

# Order in which statuses are shown: the healthy path first, then the side exits.
STATUS_ORDER: tuple[str, ...] = (
    ReportStatus.RECEIVED,
    ReportStatus.RENDERED,
    ReportStatus.CONVERTED,
    ReportStatus.NEEDS_ATTENTION,
    ReportStatus.HELD,
    ReportStatus.RELEASED,
    ReportStatus.NOTIFIED,
    ReportStatus.DELIVERED,
    ReportStatus.FAILED,
    ReportStatus.WITHDRAWN,
    ReportStatus.SUPERSEDED,
)
BATCH_STATUSES: tuple[str, ...] = tuple(BatchStatus)


# --- shared by every audience ----------------------------------------------------------


def tokens_match(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison; a missing value never matches."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def report_download_name(sample_date: str | date | None) -> str:
    text = str(sample_date or "")[:10]
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return "laboratory-report.pdf"
    return f"laboratory-report-{text}.pdf"


# --- batches ------------------------------------------------------------------------------


XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_CONTENT_TYPE = "text/csv"


# What a results sheet may be, by its name's ending: the content type it is stored with and
# the first bytes every such file starts with (.xlsx, .xlsm and .ods are zip archives, .xls an
# OLE2 compound file); ingest reads it, in a guarded subprocess.
SHEET_KINDS: dict[str, tuple[str, tuple[bytes, ...]]] = {
    ".xlsx": (XLSX_CONTENT_TYPE, (b"PK\x03\x04",)),
    ".xlsm": ("application/vnd.ms-excel.sheet.macroEnabled.12", (b"PK\x03\x04",)),
    ".xls": ("application/vnd.ms-excel", (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",)),
    ".ods": ("application/vnd.oasis.opendocument.spreadsheet", (b"PK\x03\x04",)),
    ".csv": (CSV_CONTENT_TYPE, ()),
}
SHEET_ENDINGS = ", ".join(SHEET_KINDS)


def _ending(filename: str) -> str:
    return "." + filename.lower().rpartition(".")[2]


def upload_content_type(filename: str) -> str:
    """The content type an accepted upload is stored with."""
    return SHEET_KINDS[_ending(filename)][0]


def upload_problem(filename: str, data: bytes) -> str | None:
    """Why an uploaded file cannot be a results sheet, or None."""
    kind = SHEET_KINDS.get(_ending(filename))
    if kind is None:
        return f"Only spreadsheets ({SHEET_ENDINGS}) can be uploaded."
    if not data:
        return "The file is empty."
    if len(data) > MAX_UPLOAD_BYTES:
        return f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB."
    _, magic = kind
    if not magic:
        if b"\x00" in data:  # a binary file (a workbook, UTF-16 text) renamed to .csv
            return "The file is not a valid .csv text file."
    elif not data.startswith(magic):
        return f"The file is not a valid {_ending(filename)} spreadsheet."
    return None


def clean_filename(filename: str) -> str:
    """The last path component, without control characters, at most 200 characters."""
    name = re.split(r"[\\/]", filename)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[-200:] or "upload.xlsx"


def _count(value: Any) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, list | tuple):
        return len(value)
    return 0


IN_PROGRESS = (
    ReportStatus.RECEIVED,
    ReportStatus.RENDERED,
    ReportStatus.CONVERTED,
    ReportStatus.RELEASED,
)


def batch_count_summary(
    batch: Mapping[str, Any], status_counts: Mapping[str, int]
) -> dict[str, Any]:
    """The numbers a batch page shows (and the live stream sends), JSON-ready."""
    statuses = {status: int(status_counts.get(status, 0)) for status in STATUS_ORDER}
    for status, count in status_counts.items():  # a status added later still shows
        statuses.setdefault(status, int(count))
    total = sum(statuses.values())
    failed = statuses[ReportStatus.FAILED]
    # Still moving through the pipeline; notified is done on our side (receipt pending),
    # held waits for a person.
    in_progress = sum(statuses[s] for s in IN_PROGRESS)
    waiting = statuses[ReportStatus.NEEDS_ATTENTION] + statuses[ReportStatus.HELD]
    return {
        "batch_id": batch["_id"],
        "batch_status": batch.get("status", BatchStatus.RECEIVED),
        "rows_total": int(batch.get("rows_total") or 0),
        "rows_accepted": int(batch.get("rows_accepted") or 0),
        "rows_rejected": _count(batch.get("rejected_rows")),
        "reports_created": int(batch.get("reports_created") or 0),
        "duplicates": _count(batch.get("duplicates")),
        "reports_total": total,
        "reports_failed": failed,
        "reports_in_progress": in_progress,
        "reports_waiting": waiting,
        "statuses": statuses,
    }


# --- text helpers -------------------------------------------------------------------------

_URL = re.compile(r"https?://\S+")
_PORTAL_PATH = re.compile(r"^/r/[^/?#]+")


def first_link(text: str) -> str | None:
    match = _URL.search(text)
    return match.group(0).rstrip(".,;)") if match else None


def redact_path(path: str) -> str:
    """A request path fit for logs: the portal link token replaced."""
    return _PORTAL_PATH.sub("/r/<token>", path)


def metrics_text(
    report_counts: Mapping[str, int],
    batch_counts: Mapping[str, int],
    audit_counts: Mapping[str, int],
    *,
    integrity_failures: int = 0,
    stuck_counts: Mapping[str, int] | None = None,
    dead_letter_counts: Mapping[str, int] | None = None,
    queue_depths: Mapping[str, tuple[int, int]] | None = None,
) -> str:
    """The stored counts set on their gauges (every known label value, 0 when absent), then
    the process's whole registry in Prometheus text (services/infra/metrics.py)."""
    queue_names = [name for q in topology.QUEUES for name in (q.name, q.dead_letter_queue)]
    depths = queue_depths or {}
    metrics.set_counts(metrics.REPORTS, dict(report_counts), STATUS_ORDER)
    metrics.set_counts(metrics.BATCHES, dict(batch_counts), BATCH_STATUSES)
    metrics.set_counts(metrics.PORTAL_EVENTS, dict(audit_counts), ())
    metrics.PDF_INTEGRITY_FAILURES.set(integrity_failures)
    stuck_known = [status.value for status in STUCK_AFTER]
    metrics.set_counts(metrics.REPORTS_STUCK, dict(stuck_counts or {}), stuck_known)
    queues = [queue.name for queue in topology.QUEUES]
    metrics.set_counts(metrics.DEAD_LETTERS, dict(dead_letter_counts or {}), queues)
    if queue_depths is not None:  # the broker answered
        ready = {name: messages for name, (messages, _) in depths.items()}
        consumers = {name: count for name, (_, count) in depths.items()}
        metrics.set_counts(metrics.QUEUE_MESSAGES, ready, queue_names)
        metrics.set_counts(metrics.QUEUE_CONSUMERS, consumers, queue_names)
    return generate_latest(REGISTRY).decode()
