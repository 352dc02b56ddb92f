"""The `resultflow` command against the real MongoDB-protocol server."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from pymongo import MongoClient

from services.cli import main
from services.infra.settings import Settings
from tests.support import report_document


@pytest.mark.usefixtures("cli_env")
def test_users_create_stores_only_an_argon2id_hash(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    main(["users", "create", "alice", "--password-stdin"])
    client: MongoClient[dict[str, Any]]
    with MongoClient(settings.mongodb_uri) as client:
        user = client[settings.mongodb_database].users.find_one({"username": "alice"})
        client.drop_database(settings.mongodb_database)
    assert user is not None
    assert user["password_hash"].startswith("$argon2id$")
    assert "a long enough password" not in str(user)


@pytest.mark.usefixtures("cli_env")
def test_users_create_refuses_a_short_password_with_a_clear_message(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    with pytest.raises(SystemExit) as exit_:
        main(["users", "create", "bob", "--password-stdin"])
    assert "at least 12 characters" in str(exit_.value.code)


@pytest.mark.usefixtures("cli_env")
def test_tokens_create_prints_a_token_once_and_stores_only_its_hash(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    main(["users", "create", "carol", "--password-stdin"])
    capsys.readouterr()
    main(["tokens", "create", "carol", "--name", "LIS bridge"])
    created = json.loads(capsys.readouterr().out)
    main(["tokens", "list", "carol"])
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    main(["tokens", "revoke", created["id"]])
    with pytest.raises(SystemExit) as unknown:
        main(["tokens", "create", "nobody"])
    client: MongoClient[dict[str, Any]]
    with MongoClient(settings.mongodb_uri) as client:
        stored = client[settings.mongodb_database].api_tokens.find_one({"_id": created["id"]})
        client.drop_database(settings.mongodb_database)
    assert created["username"] == "carol" and len(created["token"]) == 43
    assert [(t["_id"], t["name"]) for t in listed] == [(created["id"], "LIS bridge")]
    assert created["token"] not in json.dumps(listed)
    assert stored is not None and created["token"] not in str(stored)
    assert stored["revoked_at"] is not None
    assert "User 'nobody' does not exist" in str(unknown.value.code)


@pytest.mark.usefixtures("cli_env")
def test_operators_release_withdraw_and_cancel_from_the_command_line(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    amqp_url: str,
    empty_queues: None,
) -> None:
    held = report_document(status="held")
    sent = report_document(status="notified", batch_id="b-1", patient={"patient_id": "P-2"})
    waiting = report_document(status="received", batch_id="b-1", patient={"patient_id": "P-3"})
    with MongoClient[dict[str, Any]](settings.mongodb_uri) as client:
        client[settings.mongodb_database].reports.insert_many([held, sent, waiting])
        client[settings.mongodb_database].batches.insert_one(
            {"_id": "b-1", "status": "ingested", "filename": "x.xlsx"}
        )
    main(["reports", "release", held["_id"], "--reason", "phoned", "--as", "ann"])
    released = json.loads(capsys.readouterr().out)
    with pytest.raises(SystemExit) as refused:
        main(["reports", "withdraw", held["_id"], "--as", "ann"])
    main(["batches", "cancel", "b-1", "--reason", "wrong file", "--as", "ann"])
    cancelled = json.loads(capsys.readouterr().out)
    with MongoClient[dict[str, Any]](settings.mongodb_uri) as client:
        audit = client[settings.mongodb_database].audit.find_one({"action": "report.released"})
        statuses = {r["_id"]: r["status"] for r in client[settings.mongodb_database].reports.find()}
        client.drop_database(settings.mongodb_database)
    assert released == {"id": held["_id"], "version": 1, "status": "released"}
    assert "Say why the report is withdrawn." in str(refused.value.code)
    assert cancelled["done"] == [waiting["_id"]]
    assert cancelled["left"] == [{"id": sent["_id"], "detail": "already sent (notified)"}]
    assert statuses == {
        held["_id"]: "released",
        sent["_id"]: "notified",
        waiting["_id"]: "withdrawn",
    }
    assert audit is not None and audit["actor"] == "admin:ann" and audit["detail"]["via"] == "cli"
