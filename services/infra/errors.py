"""Errors every service shares; they import nothing else of ours, so anything may raise them."""

from __future__ import annotations


class PermanentError(Exception):
    """This message can never succeed; retrying is pointless. The text is shown to lab staff."""


class ReportNotFoundError(PermanentError):
    def __init__(self, report_id: str) -> None:
        super().__init__(f"report {report_id} does not exist")


class ContendedError(Exception):
    """A document this change needs is held by another transaction (most often one a killed
    process left open, which MongoDB aborts after `transactionLifetimeLimitSeconds`, 60 s):
    nothing was changed; the consumer tries the message again (`services.infra.consumer`)."""
