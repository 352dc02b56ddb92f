"""The file store: uploads, templates, .docx and PDFs in GridFS."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from gridfs import AsyncGridFSBucket
from pymongo.errors import DuplicateKeyError

from services.infra.database import Database


@dataclass(frozen=True)
class StoredFile:
    id: str
    filename: str
    data: bytes
    metadata: dict[str, Any]


class FileStore:
    def __init__(self, db: Database) -> None:
        self._bucket = AsyncGridFSBucket(db)
        self._files = db["fs.files"]

    async def put(self, filename: str, data: bytes, metadata: dict[str, Any] | None = None) -> str:
        file_id = await self._bucket.upload_from_stream(filename, data, metadata=metadata or {})
        return str(file_id)

    async def put_for_report(
        self, filename: str, data: bytes, metadata: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """Store a report's .docx or PDF once (`metadata`: its `report_id` and `kind`); id and
        metadata of the one kept. A concurrent delivery (redelivered after a broker restart,
        or sent again by the outbox relay) that stored its copy first wins: the unique index
        `report_file_once` refuses the second, and the first is used."""
        try:
            return await self.put(filename, data, metadata), metadata
        except DuplicateKeyError:
            stored = await self.find_for_report(metadata["report_id"], metadata["kind"])
            if stored is None:
                raise
            return stored

    async def find_for_report(self, report_id: str, kind: str) -> tuple[str, dict[str, Any]] | None:
        """Id and metadata of the `kind` file stored for a report, if any (oldest first).

        Lets a redelivered message reuse what an interrupted one stored. GridFS writes the
        files document after the last chunk, so a file found here is complete.
        """
        found = await self._files.find_one(
            {"metadata.report_id": report_id, "metadata.kind": kind}, sort=[("uploadDate", 1)]
        )
        return (str(found["_id"]), dict(found["metadata"])) if found else None

    async def get(self, file_id: str) -> StoredFile:
        stream = await self._bucket.open_download_stream(ObjectId(file_id))
        data = await stream.read()
        return StoredFile(file_id, stream.filename or "", data, dict(stream.metadata or {}))
