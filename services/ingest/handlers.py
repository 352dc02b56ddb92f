"""Ingest handlers: read a batch or an LIS message, store new reports, ask for rendering."""

from __future__ import annotations

import asyncio
import uuid

import structlog
from gridfs.errors import NoFile

from contracts.v1 import (
    IngestBatch,
    IngestFhirBundle,
    IngestLisResult,
    RenderReport,
    ReportStatus,
    utcnow,
)
from services.infra import fhir_bundle, second_check
from services.infra.audit import SYSTEM, Audit, staff
from services.infra.batches import Batches
from services.infra.broker import publish
from services.infra.crash_points import crash_point
from services.infra.documents import BatchStatus, LisSource, ReportDocument, SheetSource
from services.infra.errors import PermanentError
from services.infra.service import Resources
from services.infra.sheet_profiles import ProfileNotFound, SheetProfile, SheetProfiles
from services.ingest import adapters, logic, profiles, versions
from services.ingest.versions import Arrival

log = structlog.get_logger()

# Tries at storing a version while other ingests store versions of the same source.
VERSION_RACE_TRIES = 5


class IngestHandlers:
    def __init__(self, resources: Resources) -> None:
        self._resources = resources
        self._reports = resources.reports
        self._batches = Batches(resources.db)
        self._rejected_messages = adapters.RejectedMessages(resources.db)
        self._audit = Audit(resources.db)
        self._profiles = SheetProfiles(resources.db)

    def _refuse_unknown_lab(self, lab_id: str, what: str) -> None:
        if reason := logic.unknown_lab(lab_id, self._resources.settings.configured_lab_ids):
            raise PermanentError(f"{what}: {reason}")

    async def ingest_batch(self, message: IngestBatch) -> None:
        self._refuse_unknown_lab(message.lab_id, f"batch {message.batch_id}")
        batch = await self._batches.get(message.batch_id)
        if batch is None:
            raise PermanentError(f"batch {message.batch_id} does not exist")
        if batch["status"] == BatchStatus.CANCELLED:
            log.info("batch.cancelled_before_ingest")
            return
        if message.preview != (batch["status"] == BatchStatus.PREVIEWING) or (
            batch["status"] == BatchStatus.DISCARDED
        ):
            # A preview already confirmed or discarded, or a real run of one not confirmed.
            log.info("batch.ingest_not_wanted", preview=message.preview, status=batch["status"])
            return
        try:
            upload = await self._resources.files.get(message.file_id)
        except NoFile:
            raise PermanentError("the uploaded file is missing from the file store") from None
        profile = None
        if message.profile:
            try:
                profile = await self._profiles.get(message.lab_id, message.profile)
            except ProfileNotFound as error:
                raise PermanentError(str(error)) from None
        if message.preview:
            await self._preview(message, upload.data, batch["filename"], profile)
            return
        # Parsing a big sheet takes seconds: off the event loop, so the broker connection
        # (heartbeats, other consumers) stays alive.
        try:
            outcome = await asyncio.to_thread(self._read, upload.data, batch["filename"], profile)
        except logic.SheetError as error:
            raise PermanentError(str(error)) from None

        created, duplicates, corrections = [], [], []
        for draft in outcome.drafts:
            source: SheetSource = {
                "kind": "sheet",
                "batch_id": message.batch_id,
                "rows": draft.rows,
            }
            if batch.get("uploaded_at"):
                source["at"] = batch["uploaded_at"]
            kind, report = await self._store_draft(
                draft, message.lab_id, message.correlation_id, source, message.template
            )
            if kind in (Arrival.SAME, Arrival.OUTDATED):
                duplicates.append(
                    logic.duplicate_entry(draft, report, outdated=kind is Arrival.OUTDATED)
                )
                continue
            created.append(report)  # possibly from an earlier delivery of this message
            if kind is Arrival.CORRECTION:
                corrections.append(versions.correction_entry(draft.rows, report))
        # Render requests first: once the batch says "ingested", a failure can no longer
        # fail it, so everything it promises must already be on its way. (A crash before
        # they are confirmed leaves the IngestBatch unacked: its redelivery sends them.)
        crash_point("ingest.after_reports_stored")
        for report in created:
            await self._request_render(report)
        ingested = await self._batches.mark_ingested(
            message.batch_id,
            {
                "rows_total": outcome.rows_total,
                "rows_accepted": outcome.rows_accepted,
                "rejected_rows": [{"row": r.row, "reason": r.reason} for r in outcome.rejected],
                "reports_created": len(created),
                "duplicates": duplicates,
                "corrections": corrections,
            },
        )
        if not ingested:
            # Cancelled while it was read: what it made must not go out either.
            for report in created:
                await self._reports.advance(
                    report, ReportStatus.WITHDRAWN, reason="its batch was cancelled"
                )
            log.info("batch.cancelled_during_ingest", reports=len(created))
            return
        log.info(
            "batch.ingested",
            rows=outcome.rows_total,
            rejected=len(outcome.rejected),
            reports=len(created),
            duplicates=len(duplicates),
            corrections=len(corrections),
        )

    def _read(self, data: bytes, filename: str, profile: SheetProfile | None) -> logic.SheetOutcome:
        table = adapters.read_sheet(data, filename, profile)
        region = self._resources.settings.default_region
        return profiles.group(table, profile, region, utcnow().date())

    async def _preview(
        self, message: IngestBatch, data: bytes, filename: str, profile: SheetProfile | None
    ) -> None:
        """Record what the batch would make; no report, no render request."""
        stored = [] if profile else await self._profiles.list(message.lab_id)
        region = (profile and profile.region) or self._resources.settings.default_region
        found = await asyncio.to_thread(
            adapters.preview_sheet, data, filename, profile, stored, region, utcnow().date()
        )
        recorded = await self._batches.record_preview(message.batch_id, found)
        log.info("batch.previewed", recorded=recorded, reports=found["reports_total"])

    async def ingest_lis_result(self, message: IngestLisResult) -> None:
        self._refuse_unknown_lab(message.lab_id, f"LIS message {message.message_id}")
        region = self._resources.settings.default_region
        try:
            draft = logic.lis_draft(message, region, utcnow().date())
        except logic.RowError as error:
            raise PermanentError(f"LIS message {message.message_id}: {error}") from None
        source: LisSource = {
            "kind": "lis",
            "message_id": message.message_id,
            "accession": message.accession,
            "at": message.created_at,
        }
        kind, report = await self._store_draft(
            draft, message.lab_id, message.correlation_id, source
        )
        if kind in (Arrival.SAME, Arrival.OUTDATED):
            log.info("lis_result.not_used", report_id=report["_id"], arrival=kind.name.lower())
            return
        if kind is Arrival.CORRECTION:
            log.info("lis_result.correction", report_id=report["_id"], version=report["version"])
        await self._request_render(report)

    async def ingest_fhir_bundle(self, message: IngestFhirBundle) -> None:
        """Each DiagnosticReport of the bundle, as an LIS result message would be."""
        self._refuse_unknown_lab(message.lab_id, f"FHIR bundle {message.message_id}")
        region = self._resources.settings.default_region
        try:
            results = fhir_bundle.to_results(message.bundle, message.lab_id, region)
        except fhir_bundle.FhirError as error:
            raise PermanentError(f"FHIR bundle {message.message_id}: {error}") from None
        for result in results:
            update = {"correlation_id": message.correlation_id, "created_at": message.created_at}
            await self.ingest_lis_result(result.model_copy(update=update))

    async def _store_draft(
        self,
        draft: logic.ReportDraft,
        lab_id: str,
        correlation_id: str,
        source: SheetSource | LisSource,
        template: str | None = None,
    ) -> tuple[Arrival, ReportDocument]:
        """Store the draft as the first version of its source, as a correction (the next
        version, which supersedes the older ones), or not at all (the same content again).
        An earlier delivery of this very message counts as done already."""
        document = logic.report_document(
            draft,
            report_id=uuid.uuid4().hex,
            lab_id=lab_id,
            correlation_id=correlation_id,
            source=source,
            now=utcnow(),
            default_language=self._resources.settings.default_language,
        )
        if template:  # chosen at upload for the whole batch: the choice rules are not asked
            document["template"] = template
        if draft.pin:  # the receipt's PIN itself is kept nowhere (`services.infra.second_check`)
            secret = self._resources.settings.second_check_secret
            document["pin_hash"] = second_check.keyed_hash(secret, "pin", draft.pin)
        # Most sources arrive once: try the first version straight away (one write, no read);
        # the unique key refuses it when any version exists, and then versions are compared.
        first = await self._reports.create(document)
        if first["_id"] == document["_id"]:
            return Arrival.NEW, first
        for _ in range(VERSION_RACE_TRIES):
            latest = await self._reports.latest(lab_id, draft.source_key)
            if latest is not None and versions.same_source(latest["source"], source):
                kind = Arrival.NEW if latest["version"] == 1 else Arrival.CORRECTION
                await self._reports.supersede_older(latest)
                if kind is Arrival.CORRECTION:
                    await self._audit_correction(latest)
                return kind, latest
            kind, wanted = versions.arrival(latest, document)
            if kind in (Arrival.SAME, Arrival.OUTDATED):
                return kind, wanted
            stored = await self._reports.create(wanted)
            if stored["_id"] == wanted["_id"]:
                await self._reports.supersede_older(stored)
                if kind is Arrival.CORRECTION:
                    await self._audit_correction(stored)
                return kind, stored
            # Another ingest stored this version first: look again at what is latest now.
        raise RuntimeError("the report's versions kept changing; retrying the message")

    async def _audit_correction(self, report: ReportDocument) -> None:
        """A corrected version arrived: audited once (a redelivery finds the entry), as the
        uploader of its sheet (or the system, for an LIS message)."""
        if await self._audit.exists("report.corrected", report["_id"]):
            return
        source = report["source"]
        batch = await self._batches.get(source["batch_id"]) if source["kind"] == "sheet" else None
        uploader = batch.get("uploaded_by") if batch else None
        actor = staff(uploader) if uploader else SYSTEM
        detail = {
            "version": report["version"],
            "replaces": report.get("previous_id"),
            "changed": [change["what"] for change in report.get("changes", [])],
            "source": {k: v for k, v in source.items() if k != "at"},
        }
        await self._audit.write(actor, "report.corrected", report["_id"], detail)

    async def _request_render(self, report: ReportDocument) -> None:
        # Only reports still waiting: on redelivery the rest are already on their way.
        if report["status"] == ReportStatus.RECEIVED:
            await publish(
                self._resources.broker,
                RenderReport(report_id=report["_id"], correlation_id=report["correlation_id"]),
            )

    async def give_up_batch(self, message: IngestBatch, reason: str) -> None:
        await self._batches.fail(message.batch_id, reason)

    async def give_up_fhir_bundle(self, message: IngestFhirBundle, reason: str) -> None:
        await self._rejected_messages.record(
            message.message_id, message.lab_id, "", reason, message.correlation_id
        )

    async def give_up_lis_result(self, message: IngestLisResult, reason: str) -> None:
        # The message itself goes to the dead-letter queue; this record says why.
        await self._rejected_messages.record(
            message.message_id, message.lab_id, message.accession, reason, message.correlation_id
        )
