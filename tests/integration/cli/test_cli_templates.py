"""`resultflow templates`: the lab's stored templates for operators, the same actions as the
dashboard's Templates pages (upload, map, activate, choice rules), audited under `--as`."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from services.cli import main
from services.infra.settings import Settings
from tests.template_files import lab_template


def run(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    main(["templates", *args])
    return json.loads(capsys.readouterr().out)


@pytest.mark.usefixtures("cli_env")
def test_templates_are_uploaded_mapped_activated_and_chosen_from_the_command_line(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docx = tmp_path / "letterhead.docx"
    docx.write_bytes(lab_template(body="{{ patient_name }}"))
    uploaded = run(capsys, "upload", "letterhead", str(docx), "--as", "ops@cli")
    assert uploaded["version"] == 1 and uploaded["lint"]["unknown"] == ["patient_name"]
    with pytest.raises(SystemExit) as refused:
        main(["templates", "activate", "letterhead", "1"])
    assert "did not pass the check" in str(refused.value.code)

    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({"patient_name": {"field": "patient.name"}}))
    assert run(capsys, "map", "letterhead", "1", str(mapping))["lint"]["ok"]
    assert run(capsys, "activate", "letterhead", "1")["active"] is True
    assert run(capsys, "list") == {"name": "letterhead", "active": 1, "versions": {"1": True}}

    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([{"test": "HbA1c", "template": "letterhead"}]))
    saved = run(capsys, "set-rules", str(rules), "--as", "ops@cli")
    assert saved == {"rules": [{"test": "HbA1c", "language": "", "template": "letterhead"}]}
    assert run(capsys, "rules") == saved
    rules.write_text(json.dumps([{"template": "nothing-here"}]))
    with pytest.raises(SystemExit) as refused:
        main(["templates", "set-rules", str(rules)])
    assert "'nothing-here' has no active version" in str(refused.value.code)

    client: MongoClient[dict[str, Any]]
    with MongoClient(settings.mongodb_uri) as client:
        audit: list[dict[str, Any]] = list(
            client[settings.mongodb_database].audit.find({}, {"actor": 1, "action": 1})
        )
        client.drop_database(settings.mongodb_database)
    operator = f"{getpass.getuser()}@cli"  # without --as: who runs the command
    assert [(a["actor"], a["action"]) for a in audit] == [
        ("ops@cli", "template.uploaded"),
        (operator, "template.mapped"),
        (operator, "template.activated"),
        ("ops@cli", "template.rules_saved"),
    ]
