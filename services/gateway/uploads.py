"""Taking an uploaded results sheet, for the dashboard's upload page and the admin API alike:
check it, store it with its batch and the IngestBatch that hands it to ingest (one
transaction: the message cannot be lost), audited whether taken or refused."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from contracts.v1 import IngestBatch, Message
from services.gateway import logic
from services.gateway.web import USER, client_detail
from services.infra.audit import Audit, staff
from services.infra.batches import Batches
from services.infra.broker import PUBLISH_WAIT_SECONDS, ensure_accepting_work
from services.infra.documents import BatchDocument, BatchStatus
from services.infra.service import Resources
from services.infra.sheet_profiles import SheetProfiles
from services.infra.templates import TemplateStore

if TYPE_CHECKING:
    from pymongo.asynchronous.client_session import AsyncClientSession

log = structlog.get_logger()


class UploadRefused(Exception):
    """The upload is not a sheet we can read: the text says why, for staff."""


@dataclass(frozen=True)
class Upload:
    """What staff uploaded, from whichever door (the page, the API, the command line)."""

    filename: str
    data: bytes
    uploaded_by: str  # a username
    profile: str | None = None  # a sheet profile's name
    template: str | None = None  # the report template of every report of the batch
    preview: bool = False  # only show what it would make until staff confirm


async def take_upload(
    resources: Resources, batches: Batches, upload: Upload, actor: str, client: dict[str, Any]
) -> BatchDocument:
    """Store `upload` and hand it to ingest as a new batch; UploadRefused with the reason
    otherwise. Audited either way (as `actor`, from `client`)."""
    audit = Audit(resources.db)
    problem = await upload_refusal(resources, upload)
    if problem:
        detail = {"filename": upload.filename, "refused": problem, **client}
        await audit.write(actor, "batch.upload_refused", None, detail, outcome="refused")
        raise UploadRefused(problem)
    batch = await start_batch(resources, batches, upload)
    detail = {"filename": upload.filename, "bytes": len(upload.data), **client}
    detail |= {"profile": upload.profile, "preview": upload.preview, "template": upload.template}
    await audit.write(actor, "batch.uploaded", None, detail, object=batch["_id"])
    return batch


async def upload_refusal(resources: Resources, upload: Upload) -> str:
    """Why `upload` cannot be taken, for staff; "" when it can."""
    if problem := logic.upload_problem(upload.filename, upload.data):
        return problem
    lab = resources.settings.lab_id
    if upload.profile and not await SheetProfiles(resources.db).exists(lab, upload.profile):
        return f"There is no sheet profile named '{upload.profile}'."
    if upload.template and not await usable_template(resources, upload.template):
        return f"The template '{upload.template}' has no active version: choose another."
    return ""


async def accept_upload(
    resources: Resources,
    batches: Batches,
    request: web.Request,
    missing: str,
    *,
    preview_default: bool = False,
) -> BatchDocument:
    """The sheet in the request's multipart field `file` (`missing` when there is none),
    taken as a new batch. Optional fields (or query parameters): `profile`, `template` and
    `preview` ("true": only show what it would make until staff confirm; absent:
    `preview_default`)."""
    actor, client = staff(request[USER]), client_detail(request)
    ensure_accepting_work(resources.broker)  # else the upload would wait out the alarm
    form = await request.post()

    def field(name: str) -> str | None:
        return str(form.get(name) or request.query.get(name) or "").strip() or None

    file = form.get("file")
    filename, data = "", b""
    if isinstance(file, web.FileField) and file.filename:
        filename = logic.clean_filename(file.filename)
        data = await asyncio.to_thread(file.file.read)
    upload = Upload(
        filename,
        data,
        request[USER],
        profile=field("profile"),
        template=field("template"),
        preview=upload_preview(field("preview"), preview_default),
    )
    if not filename:
        detail = {"filename": "", "refused": missing, **client}
        await Audit(resources.db).write(
            actor, "batch.upload_refused", None, detail, outcome="refused"
        )
        raise UploadRefused(missing)
    return await take_upload(resources, batches, upload, actor, client)


async def usable_template(resources: Resources, name: str) -> bool:
    """A template new reports can use: one with an active version, or the shipped default."""
    return name == "default" or await TemplateStore(resources.db).active(name) is not None


def upload_preview(value: object, default: bool) -> bool:
    """Whether an upload asked for a preview first ("true", "1", "on"; "false", "0": not)."""
    if value is None or str(value).strip() == "":
        return default
    return str(value).strip().lower() in ("true", "1", "on", "yes")


async def start_batch(resources: Resources, batches: Batches, upload: Upload) -> BatchDocument:
    """Store an uploaded sheet, record its batch and hand it to ingest (to be read with its
    profile; with `preview`, only to record what it would make)."""
    file_id = await resources.files.put(
        upload.filename,
        upload.data,
        {"kind": "upload", "content_type": logic.upload_content_type(upload.filename)},
    )

    async def record(session: AsyncClientSession) -> tuple[BatchDocument, list[Message]]:
        batch = await batches.create(
            lab_id=resources.settings.lab_id,
            filename=upload.filename,
            file_id=file_id,
            uploaded_by=upload.uploaded_by,
            profile=upload.profile,
            preview=upload.preview,
            template=upload.template,
            session=session,
        )
        return batch, [ingest_command(batch)]

    # The batch and its IngestBatch are stored together: the message cannot be lost.
    batch = await resources.outbox.commit(
        record, crash_at="gateway.after_batch_stored", publish_wait=PUBLISH_WAIT_SECONDS
    )
    log.info("batch.uploaded", batch_id=batch["_id"], correlation_id=batch["correlation_id"])
    return batch


def ingest_command(batch: BatchDocument, *, preview: bool | None = None) -> IngestBatch:
    """The IngestBatch that reads `batch` as it was uploaded (a preview while it is one)."""
    return IngestBatch(
        correlation_id=batch["correlation_id"],
        batch_id=batch["_id"],
        lab_id=batch["lab_id"],
        file_id=batch["file_id"],
        profile=batch.get("profile"),
        template=batch.get("template"),
        preview=batch["status"] == BatchStatus.PREVIEWING if preview is None else preview,
    )
