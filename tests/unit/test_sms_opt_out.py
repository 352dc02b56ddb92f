"""Which replies opt a patient out of SMS, and back in."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.infra.opt_outs import Keyword, keyword, not_sent_reason


@pytest.mark.parametrize(
    "body", ["STOP", "stop", " Stop ", "STOPALL", "UNSUBSCRIBE", "cancel", "End", "QUIT", "STOP."]
)
def test_the_standard_stop_keywords_opt_the_number_out(body: str) -> None:
    assert keyword(body) is Keyword.STOP


@pytest.mark.parametrize("body", ["START", "start", "UNSTOP", "Unstop!"])
def test_start_and_unstop_opt_the_number_back_in(body: str) -> None:
    assert keyword(body) is Keyword.START


@pytest.mark.parametrize(
    "body", ["", "Thanks", "please stop sending", "STOP IT", "stopp", "YES", "HELP"]
)
def test_any_other_reply_changes_nothing(body: str) -> None:
    assert keyword(body) is None


def test_the_report_says_why_it_was_not_sent_and_since_when() -> None:
    opt_out = {
        "_id": "+447700900123",
        "opted_out": True,
        "at": datetime(2026, 11, 2, 20, 15, tzinfo=UTC),
        "source": "inbound_sms",
        "keyword": "STOP",
    }
    assert not_sent_reason(opt_out) == "not sent: patient opted out (on 2026-11-02)"  # type: ignore[arg-type]
