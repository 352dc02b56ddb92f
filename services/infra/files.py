"""The file store: uploads, templates, .docx and PDFs in GridFS."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from gridfs import AsyncGridFSBucket

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

    async def put(self, filename: str, data: bytes, metadata: dict[str, Any] | None = None) -> str:
        file_id = await self._bucket.upload_from_stream(filename, data, metadata=metadata or {})
        return str(file_id)

    async def get(self, file_id: str) -> StoredFile:
        stream = await self._bucket.open_download_stream(ObjectId(file_id))
        data = await stream.read()
        return StoredFile(file_id, stream.filename or "", data, dict(stream.metadata or {}))
