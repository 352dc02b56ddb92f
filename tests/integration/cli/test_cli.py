"""The `resultflow` command against the real MongoDB-protocol server."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from pymongo import MongoClient

from services.cli import main
from services.infra.settings import Settings, get_settings


def test_users_create_stores_only_an_argon2id_hash(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONGODB_URI", settings.mongodb_uri)
    monkeypatch.setenv("RESULTFLOW_MONGODB_DATABASE", settings.mongodb_database)
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    get_settings.cache_clear()
    try:
        main(["users", "create", "alice", "--password-stdin"])
    finally:
        get_settings.cache_clear()
    client: MongoClient[dict[str, Any]]
    with MongoClient(settings.mongodb_uri) as client:
        user = client[settings.mongodb_database].users.find_one({"username": "alice"})
        client.drop_database(settings.mongodb_database)
    assert user is not None
    assert user["password_hash"].startswith("$argon2id$")
    assert "a long enough password" not in str(user)


def test_users_create_refuses_a_short_password_with_a_clear_message(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONGODB_URI", settings.mongodb_uri)
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as exit_:
            main(["users", "create", "bob", "--password-stdin"])
    finally:
        get_settings.cache_clear()
    assert "at least 12 characters" in str(exit_.value.code)


def test_tokens_create_prints_a_token_once_and_stores_only_its_hash(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MONGODB_URI", settings.mongodb_uri)
    monkeypatch.setenv("RESULTFLOW_MONGODB_DATABASE", settings.mongodb_database)
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    get_settings.cache_clear()
    try:
        main(["users", "create", "carol", "--password-stdin"])
        capsys.readouterr()
        main(["tokens", "create", "carol", "--name", "LIS bridge"])
        created = json.loads(capsys.readouterr().out)
        main(["tokens", "list", "carol"])
        listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        main(["tokens", "revoke", created["id"]])
        with pytest.raises(SystemExit) as unknown:
            main(["tokens", "create", "nobody"])
    finally:
        get_settings.cache_clear()
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
