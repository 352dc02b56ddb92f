"""The metrics every service shares: a report's stage time runs from its last status change,
and stored counts show every known label, 0 when absent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY

from services.infra import metrics


def stage(name: str) -> tuple[float, float]:
    labels = {"stage": name}
    count = REGISTRY.get_sample_value("resultflow_stage_seconds_count", labels) or 0.0
    total = REGISTRY.get_sample_value("resultflow_stage_seconds_sum", labels) or 0.0
    return count, total


def test_a_stage_is_timed_from_the_reports_last_status_change_not_its_last_write() -> None:
    now = datetime.now(UTC)
    report = {
        "updated_at": now - timedelta(seconds=1),  # a phone number set since, say
        "history": [
            {"status": "received", "at": now - timedelta(minutes=10)},
            {"status": "rendered", "at": (now - timedelta(minutes=2)).replace(tzinfo=None)},
        ],
    }
    count, total = stage("test-converted")
    metrics.observe_stage("test-converted", report)
    after_count, after_total = stage("test-converted")
    assert after_count == count + 1
    assert 119 < after_total - total < 130


def test_a_report_without_times_is_not_timed() -> None:
    before = stage("test-none")
    metrics.observe_stage("test-none", {"history": []})
    assert stage("test-none") == before


def test_stored_counts_show_every_known_label_and_any_other() -> None:
    metrics.set_counts(metrics.REPORTS, {"delivered": 3, "odd": 1}, ["received", "delivered"])
    value = REGISTRY.get_sample_value
    assert value("resultflow_reports", {"status": "received"}) == 0
    assert value("resultflow_reports", {"status": "delivered"}) == 3
    assert value("resultflow_reports", {"status": "odd"}) == 1
    metrics.set_counts(metrics.REPORTS, {}, ["received"])
    assert value("resultflow_reports", {"status": "odd"}) is None
