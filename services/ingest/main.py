"""Ingest service: `faststream run --factory services.ingest.main:create_app`."""

from __future__ import annotations

from faststream import FastStream

from contracts.v1 import IngestBatch, IngestFhirBundle, IngestLisResult
from services.infra.consumer import subscribe
from services.infra.service import Resources, make_app
from services.ingest import sheet_reader
from services.ingest.handlers import IngestHandlers


def create_app(resources: Resources | None = None) -> FastStream:
    resources = resources or Resources.create("ingest")
    handlers = IngestHandlers(resources)
    sheet_reader.warm()  # the sheet reader's child starts now, not on the first upload
    subscribe(resources, IngestBatch, on_give_up=handlers.give_up_batch)(handlers.ingest_batch)
    subscribe(resources, IngestLisResult, on_give_up=handlers.give_up_lis_result)(
        handlers.ingest_lis_result
    )
    subscribe(resources, IngestFhirBundle, on_give_up=handlers.give_up_fhir_bundle)(
        handlers.ingest_fhir_bundle
    )
    return make_app(resources)
