"""Pure decisions of the gateway's admin side: uploads, batch counts, the report page, metrics;
and the helpers every audience shares (token comparison, download names, log-safe paths).
Accounts and the portal have their own: `accounts_logic`, `portal_logic`.

No broker, database or web imports here: everything is a function of its arguments.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from contracts import topology
from contracts.v1 import ReportStatus
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


def upload_content_type(filename: str) -> str:
    """The content type an accepted upload is stored with."""
    return CSV_CONTENT_TYPE if filename.lower().endswith(".csv") else XLSX_CONTENT_TYPE


def upload_problem(filename: str, data: bytes) -> str | None:
    """Why an uploaded file cannot be a results sheet (.xlsx workbook or .csv text), or None."""
    name = filename.lower()
    if not name.endswith((".xlsx", ".csv")):
        return "Only Excel workbooks (.xlsx) and CSV files (.csv) can be uploaded."
    if not data:
        return "The file is empty."
    if len(data) > MAX_UPLOAD_BYTES:
        return f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB."
    if name.endswith(".csv"):
        if b"\x00" in data:  # a binary file (a workbook, UTF-16 text) renamed to .csv
            return "The file is not a valid .csv text file."
    elif not data.startswith(b"PK\x03\x04"):  # .xlsx is a zip archive
        return "The file is not a valid .xlsx workbook."
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


def _gauge(
    name: str, summary: str, label: str, counts: Mapping[str, int], known: Sequence[str] = ()
) -> list[str]:
    """One Prometheus gauge: the `known` label values always (0 when absent), then any other."""
    values = list(known) + sorted(set(counts) - set(known))
    return [
        f"# HELP {name} {summary}",
        f"# TYPE {name} gauge",
        *(f'{name}{{{label}="{v}"}} {int(counts.get(v, 0))}' for v in values),
    ]


def metrics_text(
    report_counts: Mapping[str, int],
    batch_counts: Mapping[str, int],
    audit_counts: Mapping[str, int],
    *,
    integrity_failures: int = 0,
    stuck_counts: Mapping[str, int] | None = None,
    dead_letter_counts: Mapping[str, int] | None = None,
) -> str:
    """Prometheus text exposition of the current counts."""
    lines = [
        *_gauge("resultflow_reports", "Reports by status.", "status", report_counts, STATUS_ORDER),
        *_gauge(
            "resultflow_batches",
            "Uploaded batches by status.",
            "status",
            batch_counts,
            BATCH_STATUSES,
        ),
        *_gauge(
            "resultflow_portal_events",
            "Audited patient portal events by action.",
            "action",
            audit_counts,
        ),
        "# HELP resultflow_pdf_integrity_failures Report PDFs refused: stored SHA-256 mismatch.",
        "# TYPE resultflow_pdf_integrity_failures gauge",
        f"resultflow_pdf_integrity_failures {integrity_failures}",
        *_gauge(
            "resultflow_reports_stuck",
            "Reports not moved on for longer than their stage allows, by where they stopped.",
            "status",
            stuck_counts or {},
            [status.value for status in STUCK_AFTER],
        ),
        *_gauge(
            "resultflow_dead_letters",
            "Dead-lettered messages waiting for a person, by queue.",
            "queue",
            dead_letter_counts or {},
            [queue.name for queue in topology.QUEUES],
        ),
    ]
    return "\n".join(lines) + "\n"
