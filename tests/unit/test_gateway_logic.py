"""Pure gateway rules: passwords, tokens, lockouts, the portal check, counts, metrics."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyotp
import pytest

from services.gateway import accounts_logic, logic, mfa_logic, portal_logic, review_logic, timeline
from services.gateway.portal_logic import LinkState
from services.gateway.queries import ReportFilter
from services.infra.tokens import new_token, token_hash
from services.notify import logic as notify_logic

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def report(**access: object) -> dict[str, object]:
    base = {"token_hash": "h", "expires_at": NOW + timedelta(days=1), "failed_attempts": 0}
    return {"status": "notified", "access": {**base, **access}}


def test_passwords_shorter_than_twelve_characters_are_refused() -> None:
    assert accounts_logic.password_problem("elevenchars") is not None
    assert accounts_logic.password_problem("twelve chars") is None
    assert accounts_logic.password_problem(" " * 20) is not None


def test_usernames_are_plain_identifiers() -> None:
    assert accounts_logic.username_problem("lab.admin@example") is None
    assert accounts_logic.username_problem("") is not None
    assert accounts_logic.username_problem("a b") is not None


def test_tokens_are_256_bit_and_stored_only_as_their_sha256() -> None:
    token = new_token()
    assert len(token) == 43 and token != new_token()
    assert token_hash(token) == hashlib.sha256(token.encode()).hexdigest()
    assert token not in token_hash(token)
    assert logic.tokens_match(token, token)
    assert not logic.tokens_match(token, token[:-1] + "x")
    assert not logic.tokens_match("", "")
    assert not logic.tokens_match(token, None)


def test_the_portal_finds_a_link_by_the_very_hash_notify_stores() -> None:
    assert notify_logic.new_token is new_token and notify_logic.token_hash is token_hash
    link = notify_logic.access_link("https://lab.example", NOW, ttl_hours=1)
    assert link.access["token_hash"] == token_hash(link.url.rsplit("/", 1)[1])


def test_a_login_counts_per_user_at_address_per_address_per_user_and_overall() -> None:
    scopes = [limit.scope for limit, _ in accounts_logic.login_limits("vera", "10.0.0.1", False)]
    assert scopes == ["user_at_address", "address", "user", "everyone"]
    # From an address the user has signed in from, spraying elsewhere cannot lock her out.
    known = accounts_logic.login_limits("vera", "10.0.0.1", True)
    assert [key for _, key in known] == ["vera@10.0.0.1", "10.0.0.1", "*"]
    assert accounts_logic.USER_AT_ADDRESS.failures < accounts_logic.USER.failures


def test_retry_after_is_whole_seconds_and_never_zero() -> None:
    assert accounts_logic.retry_after_seconds(NOW + timedelta(seconds=89.2), NOW) == 90
    assert accounts_logic.retry_after_seconds(NOW, NOW) == 1


def test_the_second_factor_comes_before_a_password_change_and_setup_after_it() -> None:
    stage, done = accounts_logic.LoginStage, accounts_logic.LoginStage.DONE

    def after(current: Any, **owed: bool) -> Any:
        flags = {"must_change_password": False, "mfa_enrolled": False, "mfa_required": False}
        return accounts_logic.next_stage(current, **{**flags, **owed})

    assert after(None) is done
    assert after(None, mfa_enrolled=True, must_change_password=True) is stage.MFA_CODE
    assert after(stage.MFA_CODE, mfa_enrolled=True, must_change_password=True) is (
        stage.CHANGE_PASSWORD
    )
    assert after(stage.CHANGE_PASSWORD, mfa_required=True) is stage.MFA_SETUP
    assert after(stage.MFA_SETUP, mfa_required=True) is stage.RECOVERY_CODES
    assert after(stage.RECOVERY_CODES, mfa_required=True, mfa_enrolled=True) is done


def test_a_totp_code_is_good_for_its_step_and_the_next_once_each() -> None:
    secret = mfa_logic.new_secret()
    totp = pyotp.TOTP(secret)
    step = totp.timecode(NOW)
    assert mfa_logic.matching_step(secret, totp.generate_otp(step), NOW, None) == step
    assert mfa_logic.matching_step(secret, totp.generate_otp(step), NOW, step) is None
    assert mfa_logic.matching_step(secret, totp.generate_otp(step + 1), NOW, step) == step + 1
    assert mfa_logic.matching_step(secret, totp.generate_otp(step + 2), NOW, None) is None
    assert mfa_logic.matching_step(secret, "12345a", NOW, None) is None


def test_recovery_codes_are_random_and_match_however_typed() -> None:
    codes = mfa_logic.new_recovery_codes()
    assert len(set(codes)) == 10 and all(len(c) == 29 for c in codes)
    typed = " " + codes[0].upper().replace("-", " ") + " "
    assert mfa_logic.recovery_code_hash(typed) == mfa_logic.recovery_code_hash(codes[0])
    assert mfa_logic.looks_like_recovery_code(typed)


def test_after_login_only_local_paths_are_followed() -> None:
    assert accounts_logic.safe_next("/batches/abc?x=1") == "/batches/abc?x=1"
    for target in ("https://evil.example/", "//evil.example", "/\\evil", None, ""):
        assert accounts_logic.safe_next(target) == "/"


def test_link_state_tells_unknown_expired_locked_and_open_apart() -> None:
    assert portal_logic.link_state(None, NOW, 5) is LinkState.UNKNOWN
    assert portal_logic.link_state({"status": "converted"}, NOW, 5) is LinkState.UNKNOWN
    assert portal_logic.link_state(report(), NOW, 5) is LinkState.OPEN
    assert portal_logic.link_state(report(expires_at=NOW - timedelta(seconds=1)), NOW, 5) is (
        LinkState.EXPIRED
    )
    assert portal_logic.link_state(report(locked=True), NOW, 5) is LinkState.LOCKED
    assert portal_logic.link_state(report(failed_attempts=5), NOW, 5) is LinkState.LOCKED
    superseded = {**report(), "status": "superseded"}
    assert portal_logic.link_state(superseded, NOW, 5) is LinkState.REPLACED
    withdrawn = {**report(), "status": "withdrawn"}
    assert portal_logic.link_state(withdrawn, NOW, 5) is LinkState.WITHDRAWN


@pytest.mark.parametrize(
    "form",
    [
        {"date_of_birth": "1980-05-17"},
        {"day": "17", "month": "5", "year": "1980"},
        {"day": " 17 ", "month": "05", "year": "1980", "date_of_birth": ""},
    ],
)
def test_date_of_birth_is_read_from_a_date_input_or_three_fields(form: dict[str, str]) -> None:
    assert portal_logic.parse_date_of_birth(form) == date(1980, 5, 17)


@pytest.mark.parametrize(
    "form",
    [
        {},
        {"date_of_birth": "17/05/1980"},
        {"day": "31", "month": "2", "year": "1980"},
        {"day": "17", "month": "5", "year": "80"},
        {"day": "x", "month": "5", "year": "1980"},
    ],
)
def test_incomplete_or_impossible_dates_are_not_a_date_of_birth(form: dict[str, str]) -> None:
    assert portal_logic.parse_date_of_birth(form) is None


def test_date_of_birth_matches_the_stored_iso_date_only() -> None:
    assert portal_logic.date_of_birth_matches(date(1980, 5, 17), "1980-05-17")
    assert not portal_logic.date_of_birth_matches(date(1980, 5, 18), "1980-05-17")
    assert not portal_logic.date_of_birth_matches(date(1980, 5, 17), None)
    assert not portal_logic.date_of_birth_matches(date(1980, 5, 17), "garbage")


def test_remaining_attempts_never_go_below_zero() -> None:
    assert portal_logic.remaining_attempts(3, 5) == 2
    assert portal_logic.remaining_attempts(7, 5) == 0


def test_download_name_carries_the_sample_date() -> None:
    assert logic.report_download_name("2026-03-02") == "laboratory-report-2026-03-02.pdf"
    assert logic.report_download_name('2026"; evil') == "laboratory-report.pdf"
    assert logic.report_download_name(None) == "laboratory-report.pdf"


def test_real_spreadsheets_and_csv_text_files_up_to_ten_megabytes_are_accepted() -> None:
    assert logic.upload_problem("results.XLSX", b"PK\x03\x04rest") is None
    assert logic.upload_problem("macros.xlsm", b"PK\x03\x04rest") is None  # never run
    assert logic.upload_problem("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1rest") is None
    assert logic.upload_problem("calc.ods", b"PK\x03\x04rest") is None
    assert (
        logic.upload_problem("calc.ods", b"<html>") == "The file is not a valid .ods spreadsheet."
    )
    assert logic.upload_content_type("old.xls") == "application/vnd.ms-excel"
    assert logic.upload_problem("results.csv", b"patient_id,name\nP1,Ada\n") is None
    assert logic.upload_problem("results.CSV", b"patient_id\n") is None
    assert logic.upload_problem("results.csv", b"PK\x03\x04\x14\x00") is not None
    assert logic.upload_problem("results.csv", b"") is not None
    assert logic.upload_problem("results.xls", b"PK\x03\x04") is not None
    assert logic.upload_problem("results.txt", b"a,b\n") is not None
    assert logic.upload_content_type("monday.csv") == "text/csv"
    assert logic.upload_content_type("monday.xlsx") == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert logic.upload_problem("results.xlsx", b"") is not None
    assert logic.upload_problem("results.xlsx", b"MZ not a zip") is not None
    too_big = b"PK\x03\x04" + b"0" * logic.MAX_UPLOAD_BYTES
    assert logic.upload_problem("results.xlsx", too_big) is not None


def test_uploaded_file_names_lose_their_path() -> None:
    assert logic.clean_filename("C:\\Users\\lab\\monday.xlsx") == "monday.xlsx"
    assert logic.clean_filename("../../etc/x.xlsx") == "x.xlsx"
    assert logic.clean_filename("") == "upload.xlsx"


def test_batch_summary_counts_every_status_and_what_is_still_moving() -> None:
    batch = {
        "_id": "b1",
        "status": "ingested",
        "rows_total": 10,
        "rows_accepted": 8,
        "rejected_rows": [{"row": 3, "reason": "x"}, {"row": 4, "reason": "y"}],
        "duplicates": 1,
    }
    summary = logic.batch_count_summary(
        batch, {"received": 1, "delivered": 2, "failed": 1, "notified": 1}
    )
    assert summary["rows_rejected"] == 2 and summary["duplicates"] == 1
    assert summary["reports_total"] == 5
    assert summary["reports_failed"] == 1
    assert summary["reports_in_progress"] == 1  # notified is done on our side
    assert summary["statuses"]["rendered"] == 0
    assert list(summary["statuses"])[:3] == ["received", "rendered", "converted"]


def test_portal_tokens_are_cut_out_of_logged_paths() -> None:
    assert logic.redact_path("/r/abcDEF123_-xyz/report.pdf") == "/r/<token>/report.pdf"
    assert logic.redact_path("/r/abcDEF123_-xyz") == "/r/<token>"
    assert logic.redact_path("/batches/b1") == "/batches/b1"


def test_outbox_link_is_found_in_the_sms_text() -> None:
    body = "Your results are ready: https://lab.example/r/tok123. Lab +44 20"
    assert logic.first_link(body) == "https://lab.example/r/tok123"
    assert logic.first_link("no link") is None


def test_metrics_list_every_status_even_when_zero() -> None:
    text = logic.metrics_text({"delivered": 3}, {"ingested": 1}, {"report.viewed": 2})
    assert 'resultflow_reports{status="delivered"} 3' in text
    assert 'resultflow_reports{status="failed"} 0' in text
    assert 'resultflow_batches{status="ingested"} 1' in text
    assert 'resultflow_portal_events{action="report.viewed"} 2' in text
    assert text.endswith("\n")


def test_a_report_timeline_is_oldest_first_whatever_order_it_was_stored_in() -> None:
    history = [
        {"status": "rendered", "at": NOW + timedelta(seconds=5), "reason": ""},
        {"status": "received", "at": NOW, "reason": None},
        {"status": "failed", "at": NOW + timedelta(seconds=9), "reason": "converter timed out"},
        "not an entry",
    ]
    assert timeline.report_timeline(history) == [
        {"status": "received", "at": NOW, "reason": ""},
        {"status": "rendered", "at": NOW + timedelta(seconds=5), "reason": ""},
        {"status": "failed", "at": NOW + timedelta(seconds=9), "reason": "converter timed out"},
    ]
    assert timeline.report_timeline(None) == []


def test_a_report_timeline_puts_an_entry_without_a_time_first_and_reads_no_zone_as_utc() -> None:
    naive = datetime(2026, 3, 2, 12, 0)  # a document written without a zone
    entries = timeline.report_timeline(
        [{"status": "rendered", "at": naive}, {"status": "received", "at": None}]
    )
    assert [entry["status"] for entry in entries] == ["received", "rendered"]
    assert entries[1]["at"] == NOW


def test_a_report_source_says_sheet_rows_and_batch_or_lis_message_and_accession() -> None:
    sheet = {"batch_id": "b1", "source": {"kind": "sheet", "batch_id": "b1", "rows": [2, 3]}}
    assert timeline.report_source(sheet) == {
        "kind": "sheet",
        "batch_id": "b1",
        "rows": "2, 3",
        "message_id": "",
        "accession": "",
    }
    lis = {"source": {"kind": "lis", "message_id": "M1", "accession": "A1"}}
    assert timeline.report_source(lis) == {
        "kind": "lis",
        "batch_id": "",
        "rows": "",
        "message_id": "M1",
        "accession": "A1",
    }
    assert timeline.report_source({})["kind"] == ""


def test_audit_rows_show_time_actor_action_and_client_but_no_other_detail() -> None:
    record = {
        "at": NOW,
        "actor": "patient",
        "action": "portal.opened",
        "detail": {"ip": "203.0.113.7", "user_agent": "Phone/1", "token": "secret"},
    }
    assert timeline.audit_rows([record, {"action": "report.viewed"}]) == [
        {
            "at": NOW,
            "actor": "patient",
            "action": "portal.opened",
            "ip": "203.0.113.7",
            "user_agent": "Phone/1",
        },
        {"at": None, "actor": "", "action": "report.viewed", "ip": "", "user_agent": ""},
    ]


def test_the_report_filter_reads_a_query_and_ignores_an_unknown_status() -> None:
    filters = ReportFilter.from_query(
        {"batch": " b1 ", "status": "bogus", "phone": "+44 (7700) 900-123", "q": "ok.af*"}
    )
    assert filters == ReportFilter(batch_id="b1", phone="+447700900123", q="ok.af*")
    query = filters.mongo()
    assert query["patient.phone"] == "+447700900123"
    # What staff type is text to find, never a pattern.
    assert query["$or"][0] == {"patient.name": {"$regex": r"ok\.af\*", "$options": "i"}}
    assert filters.params() == {"batch_id": "b1", "phone": "+447700900123", "q": "ok.af*"}


def test_the_timeline_tells_the_whole_story_in_time_order() -> None:
    report = {
        "created_at": NOW,
        "version": 2,
        "changes": [{"what": "Potassium", "before": "5.9", "after": "4.1"}],
        "source": {"kind": "sheet", "batch_id": "b1", "rows": [2, 3]},
        "pdf_sha256": "ab" * 32,
        "history": [
            {"status": "received", "at": NOW, "reason": ""},
            {"status": "converted", "at": NOW + timedelta(minutes=1), "reason": ""},
            {"status": "held", "at": NOW + timedelta(minutes=2), "reason": "critical value"},
        ],
    }
    sms = [
        {
            "purpose": "result_ready",
            "provider": "twilio",
            "provider_message_id": "SM1",
            "created_at": NOW + timedelta(minutes=4),
            "sent_at": NOW + timedelta(minutes=4, seconds=1),
            "delivered_at": NOW + timedelta(minutes=5),
        }
    ]
    audit = [
        {
            "at": NOW + timedelta(minutes=3),
            "actor": "admin:ann",
            "action": "report.released",
            "detail": {"reason": "phoned"},
        }
    ]
    assert [(e["what"], e["by"], e["reason"]) for e in timeline.timeline(report, sms, audit)] == [
        (
            "source",
            "",
            "sheet rows 2, 3 of batch b1; version 2 replaces version 1, changed: Potassium",
        ),
        ("received", "", ""),
        ("converted", "", "PDF SHA-256 " + "ab" * 32),
        ("held", "", "critical value"),
        ("report.released", "admin:ann", "phoned"),
        ("sms.claimed", "", "result_ready"),
        ("sms.sent", "", "twilio SM1"),
        ("sms.delivered", "", "twilio SM1"),
    ]


def test_release_rule_rows_go_to_text_and_back_without_the_blank_ones() -> None:
    stored = [{"test": "Glucose", "flags": ["LL"], "action": "hold", "hours": 2, "critical": True}]
    rows = review_logic.rule_rows(stored)
    assert rows == [
        {
            "test": "Glucose",
            "flags": "LL",
            "action": "hold",
            "hours": "2",
            "critical": "on",
            "note": "",
        }
    ]
    form = {f"{name}-0": value for name, value in rows[0].items()} | {
        "test-1": "",
        "flags-1": "",
        "action-1": "",
        "hours-1": "",
        "note-1": "",
        "csrf_token": "x",
    }
    back = review_logic.rule_rows_from_form(form)
    assert back == rows
    assert review_logic.rules_from_rows(back) == [
        {
            "test": "Glucose",
            "flags": ["LL"],
            "action": "hold",
            "hours": "2",
            "critical": True,
            "note": "",
        }
    ]


def test_metrics_count_stuck_reports_and_waiting_dead_letters_with_zeros_for_the_rest() -> None:
    text = logic.metrics_text(
        {}, {}, {}, stuck_counts={"rendered": 2}, dead_letter_counts={"ingest.lis-result": 3}
    )
    assert 'resultflow_reports_stuck{status="rendered"} 2' in text
    assert 'resultflow_reports_stuck{status="received"} 0' in text
    assert 'resultflow_dead_letters{queue="ingest.lis-result"} 3' in text
    assert 'resultflow_dead_letters{queue="render.report"} 0' in text
