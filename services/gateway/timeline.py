"""A report's story for lab staff, pure: where it came from, every status it reached, every
SMS and every audited view or staff action, in time order (the report page and the API).

No database or web imports here: everything is a function of its arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from contracts.v1 import ReportStatus

_NO_TIME = datetime.min.replace(tzinfo=UTC)


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def report_timeline(history: Any) -> list[dict[str, Any]]:
    """A report's status history, oldest first: [{status, at, reason}].

    Stages push entries in order; sorting (stable) still puts them right should two stages
    ever have written out of order. An entry without a time is kept, first.
    """
    entries = [
        {
            "status": str(entry.get("status") or ""),
            "at": _instant(entry.get("at")),
            "reason": str(entry.get("reason") or ""),
        }
        for entry in (history if isinstance(history, list) else [])
        if isinstance(entry, Mapping)
    ]
    return sorted(entries, key=lambda entry: entry["at"] or _NO_TIME)


def timeline(
    report: Mapping[str, Any],
    notifications: Sequence[Mapping[str, Any]],
    audit_records: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """One report's story in time order, [{at, what, by, reason}]: where it came from (and
    what its version changed), every status it reached with the reason (the PDF's SHA-256
    with `converted`), every SMS and its receipts, and every audited view or staff action."""
    entries: list[dict[str, Any]] = []

    def add(at: Any, what: str, reason: str = "", by: str = "") -> None:
        entries.append({"at": _instant(at), "what": what, "by": by, "reason": reason})

    source = report_source(report)
    if source["kind"] == "sheet":
        origin = f"sheet rows {source['rows']} of batch {source['batch_id']}"
    elif source["kind"] == "lis":
        origin = f"LIS message {source['message_id']}, accession {source['accession']}"
    else:
        origin = ""
    version = int(report.get("version") or 1)
    if version > 1:
        changed = ", ".join(str(c.get("what")) for c in report.get("changes") or [])
        origin += f"; version {version} replaces version {version - 1}, changed: {changed}"
    add(report.get("created_at"), "source", origin)
    for entry in report_timeline(report.get("history")):
        reason = entry["reason"]
        if entry["status"] == ReportStatus.CONVERTED and report.get("pdf_sha256"):
            reason = f"PDF SHA-256 {report['pdf_sha256']}"
        add(entry["at"], entry["status"], reason)
    for sms in notifications:
        to_whom = f"{sms.get('provider', '')} {sms.get('provider_message_id') or ''}".strip()
        add(sms.get("created_at"), "sms.claimed", str(sms.get("purpose") or ""))
        if sms.get("sent_at"):
            add(sms.get("sent_at"), "sms.sent", to_whom)
        if sms.get("delivered_at"):
            add(sms.get("delivered_at"), "sms.delivered", to_whom)
        if sms.get("error"):
            add(sms.get("updated_at"), f"sms.{sms.get('status')}", str(sms.get("error")))
    for record in audit_records:
        detail = record.get("detail")
        detail = detail if isinstance(detail, Mapping) else {}
        add(
            record.get("at"),
            str(record.get("action") or ""),
            str(detail.get("reason") or ""),
            str(record.get("actor") or ""),
        )
    return sorted(entries, key=lambda entry: entry["at"] or _NO_TIME)


def report_source(report: Mapping[str, Any]) -> dict[str, str]:
    """Where a report came from, every key present: kind `sheet` (batch_id, rows as text),
    `lis` (message_id, accession) or "" when the report does not say."""
    source = report.get("source")
    source = source if isinstance(source, Mapping) else {}
    found = {"kind": "", "batch_id": "", "rows": "", "message_id": "", "accession": ""}
    if source.get("kind") == "sheet":
        rows = source.get("rows")
        found |= {
            "kind": "sheet",
            "batch_id": str(source.get("batch_id") or report.get("batch_id") or ""),
            "rows": ", ".join(str(row) for row in rows) if isinstance(rows, list) else "",
        }
    elif source.get("kind") == "lis":
        found |= {
            "kind": "lis",
            "message_id": str(source.get("message_id") or ""),
            "accession": str(source.get("accession") or ""),
        }
    return found


def audit_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Audit records as the report page shows them: {at, actor, action, ip, user_agent}; any
    other detail stays unshown."""
    rows = []
    for record in records:
        detail = record.get("detail")
        detail = detail if isinstance(detail, Mapping) else {}
        rows.append(
            {
                "at": record.get("at"),
                "actor": str(record.get("actor") or ""),
                "action": str(record.get("action") or ""),
                "ip": str(record.get("client") or detail.get("ip") or ""),
                "user_agent": str(detail.get("user_agent") or ""),
            }
        )
    return rows
