"""Backup and restore of the whole database, GridFS (the PDFs, sheets and templates)
included: `resultflow backup create DIR`, `resultflow backup verify DIR` and `resultflow
backup restore DIR [--drop]`. No mongodump exists on these machines, so the command writes
the same layout itself: one `<collection>.bson` (the documents' BSON, byte for byte, one after
another) and `<collection>.metadata.json` (its indexes) per collection, which MongoDB's own
mongorestore also reads, plus `manifest.json` with each file's document count and SHA-256.

The system may keep running during a backup. Collections are read in an order that keeps
every reference whole: first the documents that name files, then `fs.files`, then
`fs.chunks` (GridFS writes a file's chunks before its `fs.files` entry, and a report names a
file only after it was stored), so every file a backed-up report names is in the backup.
A restore checks every SHA-256 first and refuses an incomplete or altered backup, and only
writes into an empty database (or one it may empty: `--drop`).
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FORMAT = "resultflow-backup/1"
LAST = ("fs.files", "fs.chunks")  # after everything that names a file: see above
INSERT_BATCH = 500


def add_commands(commands: Any) -> None:
    backup = commands.add_parser("backup", help="back up or restore the database and its files")
    actions = backup.add_subparsers(dest="action", required=True)
    actions.add_parser("create", help="write a backup to an empty folder").add_argument(
        "directory", type=Path
    )
    actions.add_parser("verify", help="check a backup's files against its manifest").add_argument(
        "directory", type=Path
    )
    restore = actions.add_parser("restore", help="load a backup into the configured database")
    restore.add_argument("directory", type=Path)
    restore.add_argument("--drop", action="store_true", help="empty the database first")


def collection_order(names: list[str]) -> list[str]:
    """Every collection, those GridFS owns last, `fs.files` before `fs.chunks`."""
    return sorted(n for n in names if n not in LAST) + [n for n in LAST if n in names]


def raw_documents(path: Path) -> Iterator[bytes]:
    """The BSON documents of a `.bson` file, each as its bytes."""
    with path.open("rb") as source:
        while header := source.read(4):
            size = int.from_bytes(header, "little")
            body = source.read(size - 4)
            if len(header) < 4 or size < 5 or len(body) != size - 4:
                raise ValueError(f"{path.name} ends in the middle of a document")
            yield header + body


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def verify(directory: Path) -> dict[str, Any]:
    """The manifest, once every file it lists is there with its SHA-256; ValueError if not."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
    except (OSError, ValueError):
        raise ValueError(f"{directory} holds no readable manifest.json: not a backup") from None
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{directory} is not a {FORMAT} backup")
    for name, entry in manifest["collections"].items():
        path = directory / f"{name}.bson"
        if not path.is_file() or sha256_of(path) != entry["sha256"]:
            raise ValueError(f"{path.name} is missing or not as it was backed up")
    return dict(manifest)


def create(db: Any, directory: Path) -> dict[str, Any]:
    from bson.codec_options import CodecOptions
    from bson.json_util import dumps
    from bson.raw_bson import RawBSONDocument

    from contracts.v1 import utcnow

    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise ValueError(f"{directory} is not empty: back up into a new folder")
    raw = CodecOptions(document_class=RawBSONDocument)
    collections: dict[str, Any] = {}
    for name in collection_order(db.list_collection_names()):
        collection = db.get_collection(name, codec_options=raw)
        path, count = directory / f"{name}.bson", 0
        with path.open("wb") as target:
            for document in collection.find(batch_size=INSERT_BATCH):
                target.write(document.raw)
                count += 1
        indexes = [dict(index) for index in db[name].list_indexes()]
        metadata = {"options": {}, "indexes": indexes, "collectionName": name}
        (directory / f"{name}.metadata.json").write_text(dumps(metadata))
        collections[name] = {"documents": count, "sha256": sha256_of(path)}
    manifest = {
        "format": FORMAT,
        "database": db.name,
        "created_at": utcnow().isoformat(),
        "collections": collections,
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def restore(db: Any, directory: Path, *, drop: bool) -> dict[str, int]:
    from bson.raw_bson import RawBSONDocument

    manifest = verify(directory)
    present = [n for n in db.list_collection_names() if db[n].estimated_document_count()]
    if present and not drop:
        raise ValueError(
            f"the database {db.name!r} is not empty ({', '.join(sorted(present))}): "
            "restore into an empty one, or add --drop to replace what is there"
        )
    for name in db.list_collection_names():
        db.drop_collection(name)
    restored: dict[str, int] = {}
    for name in collection_order(list(manifest["collections"])):
        batch: list[RawBSONDocument] = []
        count = 0
        for document in raw_documents(directory / f"{name}.bson"):
            batch.append(RawBSONDocument(document))
            if len(batch) == INSERT_BATCH:
                db[name].insert_many(batch, ordered=True)
                count, batch = count + len(batch), []
        if batch:
            db[name].insert_many(batch, ordered=True)
            count += len(batch)
        if count != manifest["collections"][name]["documents"]:
            raise ValueError(
                f"{name}: {count} documents restored, the backup holds a different number"
            )
        restored[name] = count
    return restored


def run(args: argparse.Namespace) -> None:
    import asyncio

    from pymongo import MongoClient

    from services.infra.audit import Audit
    from services.infra.database import connect, ensure_indexes
    from services.infra.settings import get_settings

    settings = get_settings()
    client: MongoClient[dict[str, Any]] = MongoClient(settings.mongodb_uri, tz_aware=True)
    db = client[settings.mongodb_database]
    actor = f"cli:{getpass.getuser()}"

    async def afterwards(action: str, detail: dict[str, Any]) -> None:
        async_client, async_db = connect(settings)
        try:
            if action == "backup.restored":
                await ensure_indexes(async_db)
            await Audit(async_db).write(actor, action, None, detail)
        finally:
            await async_client.close()

    try:
        if args.action == "create":
            manifest = create(db, args.directory)
            counts = {n: c["documents"] for n, c in manifest["collections"].items()}
            asyncio.run(afterwards("backup.created", {"collections": len(counts)}))
            print(json.dumps({"directory": str(args.directory), "documents": counts}))
        elif args.action == "verify":
            manifest = verify(args.directory)
            print(json.dumps({"ok": True, "created_at": manifest["created_at"]}))
        else:
            counts = restore(db, args.directory, drop=args.drop)
            detail = {"from": verify(args.directory)["created_at"], "collections": len(counts)}
            asyncio.run(afterwards("backup.restored", detail))
            print(json.dumps({"restored": counts}))
    except ValueError as error:
        sys.exit(f"resultflow: {error}")
    finally:
        client.close()
