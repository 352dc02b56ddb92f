"""`resultflow backup`: the database and its GridFS files backed up to a folder, checked, and
restored exactly (a PDF served after a restore still matches its stored SHA-256); a damaged
backup or a database that is not empty is refused with the reason."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from services.infra.audit import Audit, staff
from services.infra.database import Database
from services.infra.files import FileStore
from services.infra.settings import Settings
from tests.security.test_audit_chain import resultflow
from tests.support import report_document

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 2000  # several GridFS chunks


async def backup(settings: Settings, *args: str) -> Any:
    code, output = await resultflow(settings, "backup", *args)
    assert code == 0, output
    return json.loads(output)


async def refused(settings: Settings, *args: str) -> str:
    code, output = await resultflow(settings, "backup", *args)
    assert code == 1, output
    return output


def database(settings: Settings) -> Any:
    client: MongoClient[dict[str, Any]] = MongoClient(settings.mongodb_uri, tz_aware=True)
    return client, client[settings.mongodb_database]


async def stored_report(db: Database) -> str:
    file_id = await FileStore(db).put("r.pdf", PDF, {"kind": "pdf", "report_id": "r-1"})
    sha = hashlib.sha256(PDF).hexdigest()
    await db.reports.insert_one(
        report_document(report_id="r-1", status="notified", pdf_file_id=file_id, pdf_sha256=sha)
    )
    await Audit(db).write(staff("ann"), "report.released", "r-1", {"reason": "checked"})
    return file_id


async def test_a_backup_restores_every_document_and_file_exactly(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    file_id = await stored_report(db)
    folder = tmp_path / "backup"
    made = await backup(settings, "create", str(folder))
    assert made["documents"]["reports"] == 1 and made["documents"]["fs.chunks"] >= 2
    names = sorted(p.name for p in folder.iterdir())
    assert "reports.bson" in names and "fs.chunks.metadata.json" in names
    assert (await backup(settings, "verify", str(folder)))["ok"] is True

    why = await refused(settings, "restore", str(folder))
    assert "is not empty" in why and "reports" in why

    client, sync_db = database(settings)
    with client:
        before = {n: list(sync_db[n].find()) for n in ("reports", "fs.files", "fs.chunks")}
        client.drop_database(settings.mongodb_database)
        restored = (await backup(settings, "restore", str(folder)))["restored"]
        assert restored["reports"] == 1 and restored["audit"] == 1
        for name, documents in before.items():
            assert list(sync_db[name].find()) == documents, name
        actions = [e["action"] for e in sync_db.audit.find().sort("seq", 1)]
        # The trail goes on from the backup (taking it was audited after it was taken).
        assert actions == ["report.released", "backup.restored"]
    stored = await FileStore(db).get(file_id)
    assert hashlib.sha256(stored.data).hexdigest() == hashlib.sha256(PDF).hexdigest()


async def test_a_damaged_or_incomplete_backup_is_refused_before_anything_is_written(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    await stored_report(db)
    folder = tmp_path / "backup"
    await backup(settings, "create", str(folder))
    chunks = folder / "fs.chunks.bson"
    chunks.write_bytes(chunks.read_bytes()[:-100])  # cut short, as by a full disk
    why = await refused(settings, "restore", str(folder), "--drop")
    assert "fs.chunks.bson is missing or not as it was backed up" in why
    client, sync_db = database(settings)
    with client:
        assert sync_db.reports.count_documents({}) == 1  # nothing was dropped
        client.drop_database(settings.mongodb_database)
    assert "not empty" in await refused(settings, "create", str(folder))
