"""`resultflow profiles list | show | save | delete`: the lab's sheet mapping profiles from
the command line, in the same store as the dashboard and the API, audited as the operator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from services.cli import main
from services.infra.settings import Settings


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        main(["profiles", *args])
    captured = capsys.readouterr()
    return int(exit_.value.code or 0), captured.out, captured.err


@pytest.mark.usefixtures("cli_env")
def test_profiles_are_saved_from_a_file_listed_shown_and_deleted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], settings: Settings
) -> None:
    path = tmp_path / "sysmex.json"
    path.write_text(
        json.dumps({"name": "Sysmex", "columns": {"patient_id": ["Lab No"]}, "region": "FR"})
    )
    assert run(capsys, "save", str(path))[:2] == (0, "saved sheet profile Sysmex\n")
    status, out, _ = run(capsys, "list")
    assert status == 0 and [json.loads(line)["name"] for line in out.splitlines()] == ["Sysmex"]
    status, out, _ = run(capsys, "show", "Sysmex")
    shown = json.loads(out)
    assert (shown["columns"], shown["region"]) == ({"patient_id": ["lab no"]}, "FR")

    assert run(capsys, "delete", "Sysmex")[:2] == (0, "deleted sheet profile Sysmex\n")
    status, _, err = run(capsys, "show", "Sysmex")
    assert status == 1 and "'Sysmex' is not known" in err
    with MongoClient[dict[str, Any]](settings.mongodb_uri) as client:
        audit = client[settings.mongodb_database].audit
        entries = list(audit.find({"action": {"$regex": "^sheet_profile"}}))
    assert [e["action"] for e in entries] == ["sheet_profile.saved", "sheet_profile.deleted"]
    assert all(e["actor"].startswith("cli:") and e["role"] == "operator" for e in entries)


@pytest.mark.usefixtures("cli_env")
def test_a_profile_file_that_is_not_valid_is_refused_and_nothing_is_saved(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"name": "Bad", "layout": "diagonal"}))
    status, _, err = run(capsys, "save", str(path))
    assert status == 1 and "layout" in err
    assert run(capsys, "list")[:2] == (0, "\n")


@pytest.mark.usefixtures("cli_env")
def test_intake_check_with_suggest_names_the_stored_profile_matching_the_headers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.integration.ingest.test_sheet_profiles import SYSMEX, sysmex_sheet

    path = tmp_path / "sysmex.json"
    path.write_text(SYSMEX.model_dump_json())
    assert run(capsys, "save", str(path))[0] == 0
    sheet = tmp_path / "export.xlsx"
    sheet.write_bytes(sysmex_sheet())
    with pytest.raises(SystemExit) as exit_:
        main(["intake", "check", str(sheet), "--suggest"])
    answer = json.loads(capsys.readouterr().out)
    assert exit_.value.code == 1
    assert "no column for Patient ID, Value" in answer["error"]
    assert answer["error"].endswith("the stored profile 'Sysmex' matches its headers")


@pytest.mark.usefixtures("cli_env", "empty_queues")
def test_an_operator_confirms_a_previewed_batch_once_or_discards_one_from_the_command_line(
    settings: Settings, capsys: pytest.CaptureFixture[str], amqp_url: str
) -> None:
    import asyncio

    from tests.support import drain

    shown = {"status": "previewing", "preview": {"reports_total": 2, "error": None}}
    common = {"lab_id": settings.lab_id, "filename": "x.xlsx", "file_id": "f-1",
              "uploaded_by": "ann", "correlation_id": "c-1", "profile": "Sysmex"}  # fmt: skip
    with MongoClient[dict[str, Any]](settings.mongodb_uri) as client:
        client[settings.mongodb_database].batches.insert_many(
            [{"_id": "b-1", **common, **shown}, {"_id": "b-2", **common, **shown}]
        )
    for _ in range(2):  # the second confirm finds it confirmed and sends nothing more
        main(["batches", "confirm", "b-1", "--as", "ann"])
        assert json.loads(capsys.readouterr().out) == {"batch_id": "b-1", "status": "received"}
    main(["batches", "discard", "b-2", "--as", "ann"])
    assert json.loads(capsys.readouterr().out) == {"batch_id": "b-2", "status": "discarded"}
    with pytest.raises(SystemExit) as refused:
        main(["batches", "confirm", "b-2", "--as", "ann"])
    assert "there is no preview" in str(refused.value.code)
    [ingest] = asyncio.run(drain(amqp_url, "ingest.batch"))
    assert (ingest["batch_id"], ingest["profile"], ingest["preview"]) == ("b-1", "Sysmex", False)


@pytest.mark.usefixtures("cli_env", "empty_queues")
def test_an_operator_uploads_a_sheet_from_the_command_line_or_is_told_why_not(
    settings: Settings, capsys: pytest.CaptureFixture[str], amqp_url: str, tmp_path: Path
) -> None:
    import asyncio
    from datetime import date

    from devtools.demo import demo_sheet
    from tests.support import drain

    sheet = tmp_path / "monday.xlsx"
    sheet.write_bytes(demo_sheet(2, sample_date=date(2026, 11, 20)))
    main(["batches", "upload", str(sheet), "--preview", "--as", "ops"])
    made = json.loads(capsys.readouterr().out)
    assert made["status"] == "previewing"
    [ingest] = asyncio.run(drain(amqp_url, "ingest.batch"))
    assert (ingest["batch_id"], ingest["preview"]) == (made["batch_id"], True)

    with pytest.raises(SystemExit) as refused:
        main(["batches", "upload", str(sheet), "--template", "nowhere"])
    assert "'nowhere' has no active version" in str(refused.value.code)
    (tmp_path / "notes.txt").write_text("not a sheet")
    with pytest.raises(SystemExit) as refused:
        main(["batches", "upload", str(tmp_path / "notes.txt")])
    assert "Only spreadsheets" in str(refused.value.code)
    with MongoClient[dict[str, Any]](settings.mongodb_uri) as client:
        audit = client[settings.mongodb_database].audit
        actions = [(e["actor"], e["action"]) for e in audit.find().sort("seq", 1)]
    assert actions[0] == ("ops", "batch.uploaded")
    assert [a for _, a in actions[1:]] == ["batch.upload_refused", "batch.upload_refused"]
