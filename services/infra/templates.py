"""The owner of the `templates` collection: a lab's report templates, versioned.

Each upload of a name is a new version (`<name>:<version>` is its `_id`); its .docx is in
GridFS (`kind: template`), with the lint's answer and the field mapping beside it. One
version of a name is active (only a version that passed the lint); older versions stay, so a
report re-rendered with the version it was made with looks the same. The shipped `default`
is the fallback when no version of `default` was uploaded.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, TypedDict

from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError

from contracts.v1 import utcnow
from services.infra.database import Database
from services.infra.files import FileStore

ADD_TRIES = 20
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
DOCX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


class TemplateDocument(TypedDict):
    _id: str  # "<name>:<version>"
    name: str
    version: int
    filename: str
    file_id: str
    sha256: str
    uploaded_by: str
    uploaded_at: datetime
    lint: dict[str, Any]  # LintResult.as_dict()
    mapping: dict[str, dict[str, str]]  # placeholder -> {"field": path} or {"text": ...}
    active: bool


class TemplateError(ValueError):
    """A change that cannot be made: the text says why, for a lab administrator."""


def name_problem(name: str) -> str | None:
    if not name or len(name) > 40 or not set(name) <= NAME_CHARS:
        return "A template name is 1-40 lowercase letters, digits, - or _ (e.g. letterhead)."
    return None


class TemplateStore:
    def __init__(self, db: Database) -> None:
        self._collection = db.templates
        self._files = FileStore(db)

    async def add_version(
        self,
        name: str,
        data: bytes,
        *,
        filename: str,
        uploaded_by: str,
        lint: dict[str, Any],
        mapping: dict[str, dict[str, str]] | None = None,
    ) -> TemplateDocument:
        """Store `data` as the next version of `name` (not active)."""
        if problem := name_problem(name):
            raise TemplateError(problem)
        file_id = await self._files.put(
            filename, data, {"kind": "template", "content_type": DOCX_CONTENT_TYPE}
        )
        for _ in range(ADD_TRIES):
            newest = await self._collection.find_one({"name": name}, sort=[("version", DESCENDING)])
            version = (newest["version"] if newest else 0) + 1
            document: TemplateDocument = {
                "_id": f"{name}:{version}",
                "name": name,
                "version": version,
                "filename": filename,
                "file_id": file_id,
                "sha256": hashlib.sha256(data).hexdigest(),
                "uploaded_by": uploaded_by,
                "uploaded_at": utcnow(),
                "lint": lint,
                "mapping": mapping or {},
                "active": False,
            }
            try:
                await self._collection.insert_one(dict(document))
            except DuplicateKeyError:
                continue  # another upload of this name took the number: take the next
            return document
        raise TemplateError("Too many uploads of this template at once; try again.")

    async def get(self, name: str, version: int) -> TemplateDocument | None:
        found = await self._collection.find_one({"_id": f"{name}:{version}"})
        return TemplateDocument(**found) if found else None  # type: ignore[typeddict-item]

    async def active(self, name: str) -> TemplateDocument | None:
        found = await self._collection.find_one({"name": name, "active": True})
        return TemplateDocument(**found) if found else None  # type: ignore[typeddict-item]

    async def data(self, document: TemplateDocument) -> bytes:
        return (await self._files.get(document["file_id"])).data

    async def versions(self, name: str) -> list[TemplateDocument]:
        cursor = self._collection.find({"name": name}, sort=[("version", DESCENDING)])
        return [TemplateDocument(**d) async for d in cursor]  # type: ignore[typeddict-item]

    async def names(self) -> list[dict[str, Any]]:
        """Every template name with its newest and its active version."""
        rows: dict[str, dict[str, Any]] = {}
        async for d in self._collection.find({}, sort=[("name", 1), ("version", DESCENDING)]):
            row = rows.setdefault(d["name"], {"name": d["name"], "newest": d["version"]})
            if d.get("active"):
                row["active"] = d["version"]
        return list(rows.values())

    async def activate(self, name: str, version: int) -> TemplateDocument:
        """Make `version` the one new reports of `name` use; only a version that passed."""
        document = await self.get(name, version)
        if document is None:
            raise TemplateError(f"There is no version {version} of template {name!r}.")
        if not document["lint"].get("ok"):
            raise TemplateError("This version did not pass the check; fix and upload it again.")
        await self._collection.update_one({"_id": document["_id"]}, {"$set": {"active": True}})
        await self._collection.update_many(
            {"name": name, "active": True, "_id": {"$ne": document["_id"]}},
            {"$set": {"active": False}},
        )
        return {**document, "active": True}

    async def set_mapping(
        self, name: str, version: int, mapping: dict[str, dict[str, str]], lint: dict[str, Any]
    ) -> None:
        """Save a version's field mapping and the lint's answer with it."""
        await self._collection.update_one(
            {"_id": f"{name}:{version}"}, {"$set": {"mapping": mapping, "lint": lint}}
        )
