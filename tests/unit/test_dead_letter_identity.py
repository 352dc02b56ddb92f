from __future__ import annotations

from datetime import UTC, datetime

from services.infra.dead_letters import dead_letter_from, replay_headers

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BODY = b'{"poison": true}'
REJECTED = {"x-rejection-reason": "report_id: Field required"}


def test_a_dead_letter_delivered_again_by_rabbitmq_is_kept_once() -> None:
    first = dead_letter_from("render.report.dlq", BODY, REJECTED, None, None, NOW)
    again = dead_letter_from("render.report.dlq", BODY, dict(REJECTED), None, None, NOW)
    assert first["_id"] == again["_id"]


def test_a_replayed_message_that_fails_again_is_kept_as_a_new_dead_letter() -> None:
    first = dead_letter_from("render.report.dlq", BODY, REJECTED, None, None, NOW)
    headers = {**replay_headers(first), **REJECTED}
    second = dead_letter_from("render.report.dlq", BODY, headers, None, None, NOW)
    assert second["_id"] != first["_id"]
    third = dead_letter_from(
        "render.report.dlq", BODY, {**replay_headers(second), **REJECTED}, None, None, NOW
    )
    assert third["_id"] not in (first["_id"], second["_id"])
