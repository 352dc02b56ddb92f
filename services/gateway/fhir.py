"""The FHIR R4 door: `POST /fhir/r4/Bundle`, for a laboratory system signed in with an API
token (the `lis` role: the UPLOAD action). The Bundle is validated and mapped here
(`services.infra.fhir_bundle`) so that the LIS hears at once what is wrong, as an
OperationOutcome naming each problem and where; a good one is handed to ingest as the same
`IngestFhirBundle` command an LIS may publish on RabbitMQ, and answered 202.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import structlog
from aiohttp import web

from contracts.v1 import IngestFhirBundle
from services.gateway.accounts import USER
from services.gateway.web import client_detail
from services.infra import fhir_bundle
from services.infra.audit import Audit, staff
from services.infra.broker import publish
from services.infra.service import Resources

BUNDLE_PATH = "/fhir/r4/Bundle"
FHIR_JSON = "application/fhir+json"

log = structlog.get_logger()


def outcome(status: int, issues: list[fhir_bundle.Issue], severity: str = "error") -> web.Response:
    body = fhir_bundle.operation_outcome(issues, severity)
    return web.json_response(body, status=status, content_type=FHIR_JSON)


class FhirHandlers:
    def __init__(self, resources: Resources) -> None:
        self._resources = resources
        self._audit = Audit(resources.db)

    async def post_bundle(self, request: web.Request) -> web.StreamResponse:
        try:
            bundle: Any = json.loads(await request.read())
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            text = f"the body is not JSON ({type(error).__name__})"
            return outcome(400, [fhir_bundle.Issue("Bundle", text, "structure")])
        settings = self._resources.settings
        try:
            results = fhir_bundle.to_results(bundle, settings.lab_id, settings.default_region)
        except fhir_bundle.FhirError as error:
            log.info("fhir.bundle_refused", issues=len(error.issues))
            return outcome(422 if isinstance(bundle, dict) else 400, error.issues)
        message = IngestFhirBundle(
            correlation_id=uuid.uuid4().hex,
            message_id=fhir_bundle.bundle_id(bundle),
            lab_id=settings.lab_id,
            bundle=bundle,
        )
        try:
            await publish(self._resources.broker, message)
        except Exception as error:  # the broker is away: nothing was taken, send it again
            log.warning("fhir.publish_failed", error=type(error).__name__)
            text = "the bundle could not be queued just now; send it again"
            return outcome(503, [fhir_bundle.Issue("Bundle", text, "transient")])
        detail = {
            "bundle": message.message_id,
            "reports": len(results),
            "accessions": [result.accession for result in results],
            **client_detail(request),
        }
        await self._audit.write(staff(request[USER]), "fhir.bundle_received", None, detail)
        log.info("fhir.bundle_accepted", bundle=message.message_id, reports=len(results))
        text = f"accepted {len(results)} report(s): {', '.join(r.accession for r in results)}"
        issue = fhir_bundle.Issue("Bundle", text, "informational")
        return outcome(202, [issue], severity="information")


def setup_fhir(app: web.Application, resources: Resources) -> None:
    handlers = FhirHandlers(resources)
    app.router.add_post(BUNDLE_PATH, handlers.post_bundle)
