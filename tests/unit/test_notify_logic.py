from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts.v1 import ReportStatus
from services.infra.documents import NotificationStatus
from services.infra.release_rules import ReleaseRules
from services.notify import logic, sms_text

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
BASE_URL = "https://results.example-lab.org"


def test_access_link_carries_the_token_and_the_report_stores_only_its_hash() -> None:
    link = logic.access_link(BASE_URL, NOW, ttl_hours=24)

    assert link.url == f"{BASE_URL}/r/{link.token}"
    assert link.access == {
        "token_hash": hashlib.sha256(link.token.encode()).hexdigest(),
        "expires_at": NOW + timedelta(hours=24),
        "failed_attempts": 0,
        "locked": False,
    }
    assert link.token not in str(link.access)


def test_tokens_are_256_random_bits_and_never_repeat() -> None:
    tokens = {logic.new_token() for _ in range(1000)}

    assert len(tokens) == 1000
    # 32 bytes in unpadded URL-safe base64 is 43 characters.
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", token) for token in tokens)


def test_trailing_slash_of_the_public_url_does_not_double() -> None:
    link = logic.access_link(BASE_URL + "/", NOW, ttl_hours=1, token="abc")

    assert link.url == f"{BASE_URL}/r/abc"


def test_sms_names_the_lab_and_the_link_and_fits_one_segment() -> None:
    link = logic.access_link(BASE_URL, NOW, ttl_hours=1)

    body = sms_text.sms_body("ResultFlow Demo Laboratory", link.url)

    assert body.startswith("ResultFlow Demo Laboratory: ")
    assert link.url in body
    assert "date of birth" in body
    assert sms_text.sms_units(body)[0] == "gsm7"
    assert len(body) <= 160


def test_sms_says_until_when_the_link_works_when_that_fits_one_segment() -> None:
    link = logic.access_link(BASE_URL, NOW, ttl_hours=24 * 30)
    until = sms_text.sms_date(link.access["expires_at"])

    body = sms_text.sms_body("City Lab", link.url, until=until)

    assert until in body and "date of birth" in body
    assert sms_text.fits_one_segment(body)


def test_reminder_names_the_lab_the_link_and_its_end_in_one_segment() -> None:
    link = logic.access_link(BASE_URL, NOW, ttl_hours=24)

    body = sms_text.reminder_body("ResultFlow Demo Laboratory", link.url, "26 Dec 2026")

    assert body.startswith("ResultFlow Demo Laboratory: ") and link.url in body
    assert "26 Dec 2026" in body and sms_text.fits_one_segment(body)


def test_sms_date_is_spelled_with_the_month_name() -> None:
    assert sms_text.sms_date(datetime(2026, 12, 26, 9, 30, tzinfo=UTC)) == "26 Dec 2026"


def test_sms_falls_back_to_shorter_wording_for_a_long_lab_name() -> None:
    link = logic.access_link(BASE_URL, NOW, ttl_hours=1)
    lab = "Saint Example University Hospital Clinical Biochemistry"

    body = sms_text.sms_body(lab, link.url)

    assert link.url in body
    assert sms_text.fits_one_segment(body)


def test_sms_still_carries_the_link_when_nothing_fits_one_segment() -> None:
    link = logic.access_link(BASE_URL, NOW, ttl_hours=1)
    lab = "Laboratorium Analityczne Szpitala Wojewódzkiego im. Świętego Łukasza"

    body = sms_text.sms_body(lab, link.url)

    assert link.url in body
    assert body.startswith(lab)


def test_sms_length_counts_gsm_extension_characters_twice_and_unicode_as_ucs2() -> None:
    assert sms_text.sms_units("abc") == ("gsm7", 3)
    assert sms_text.sms_units("a€[") == ("gsm7", 5)
    assert sms_text.sms_units("Łukasz") == ("ucs2", 6)


def test_only_e164_phone_numbers_are_accepted() -> None:
    assert logic.is_e164("+447700900123")
    assert not logic.is_e164("07700 900123")
    assert not logic.is_e164("")
    assert not logic.is_e164("+0123456789")


def test_receipts_never_move_a_notification_backwards() -> None:
    assert NotificationStatus.SENT in logic.statuses_before(NotificationStatus.DELIVERED)
    assert NotificationStatus.SENDING in logic.statuses_before(NotificationStatus.SENT)
    assert NotificationStatus.DELIVERED not in logic.statuses_before(NotificationStatus.SENT)
    assert NotificationStatus.DELIVERED not in logic.statuses_before(NotificationStatus.UNDELIVERED)
    assert logic.notification_status_for("queued") == NotificationStatus.SENT


def test_undelivered_reason_gives_the_code_and_its_meaning() -> None:
    assert logic.undelivered_reason("undelivered", "30003") == (
        "SMS not delivered: 30003 (phone unreachable or switched off)"
    )
    assert logic.undelivered_reason("failed", "") == "SMS not delivered: failed"
    assert logic.undelivered_reason("undelivered", "12345") == "SMS not delivered: 12345"


def test_phone_numbers_in_provider_errors_are_blanked_out() -> None:
    text = "The 'To' number +44 7700 900123 is not a valid phone number."

    assert logic.redact_phone_numbers(text) == (
        "The 'To' number <number> is not a valid phone number."
    )
    assert logic.redact_phone_numbers("Authenticate") == "Authenticate"


def test_a_silent_claim_is_taken_over_only_if_the_provider_was_never_called() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    fresh, stale = now - timedelta(seconds=1), now - timedelta(minutes=5)
    assert logic.existing_claim({"status": "claimed", "heartbeat_at": fresh}, now) is (
        logic.ExistingClaim.IN_PROGRESS
    )
    assert logic.existing_claim({"status": "claimed", "heartbeat_at": stale}, now) is (
        logic.ExistingClaim.STALE
    )
    assert logic.existing_claim({"status": "sending", "heartbeat_at": stale}, now) is (
        logic.ExistingClaim.ABANDONED
    )


# --- the release gate ------------------------------------------------------------------------


def gate_report(**fields: Any) -> Any:
    report: dict[str, Any] = {
        "results": [{"test": "Sodium", "value": "140", "flag": ""}],
        "rejected_rows": [],
    }
    return {**report, **fields}


def test_a_complete_report_no_rule_holds_passes_the_gate() -> None:
    assert logic.release_gate(gate_report(), ReleaseRules(), NOW) is None


def test_an_incomplete_report_needs_attention_naming_its_rejected_rows() -> None:
    wait = logic.release_gate(
        gate_report(rejected_rows=[{"row": 4, "reason": "x"}, {"row": 9, "reason": "y"}]),
        ReleaseRules(),
        NOW,
    )
    assert wait is not None and wait.status is ReportStatus.NEEDS_ATTENTION
    assert wait.reason == "incomplete: sheet rows 4, 9 of this patient could not be used"


def test_a_timed_hold_records_until_when_and_why() -> None:
    rules = ReleaseRules.model_validate(
        {"rules": [{"test": "Sodium", "action": "hold", "hours": 3}]}
    )
    wait = logic.release_gate(gate_report(), rules, NOW)
    assert wait is not None and wait.status is ReportStatus.HELD
    assert wait.fields["hold"] == {
        "action": "hold",
        "until": NOW + timedelta(hours=3),
        "reason": "Sodium 140: rule: Sodium, any flag",
        "rule": 0,
        "at": NOW,
    }


def test_a_report_staff_released_passes_even_incomplete_or_critical() -> None:
    released = gate_report(
        rejected_rows=[{"row": 4, "reason": "x"}],
        results=[{"test": "Potassium", "value": "7.0", "flag": "HH"}],
        release={"by": "admin", "at": NOW, "reason": "phoned the patient"},
    )
    assert logic.release_gate(released, ReleaseRules(), NOW) is None


def test_an_updated_report_says_so_in_its_sms() -> None:
    body = sms_text.sms_body("Lab", "https://l.example/r/x", updated=True)
    assert body.startswith("Lab: your laboratory report was updated.")
    assert sms_text.fits_one_segment(body)
