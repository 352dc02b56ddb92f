"""The convert service: `faststream run --factory services.convert.main:create_app`."""

from __future__ import annotations

from faststream import FastStream

from contracts.v1 import ConvertReport
from services.convert.adapters import LibreOffice
from services.convert.handlers import ConvertHandlers
from services.infra.consumer import subscribe
from services.infra.service import Resources, make_app

MACRO_SECURITY = "/org.openoffice.Office.Common/Security/Scripting"


def create_app(resources: Resources | None = None) -> FastStream:
    # One document at a time per process (one LibreOffice), so take one message at a time:
    # the others stay in the queue for the other replicas.
    resources = resources or Resources.create("convert", prefetch=1)
    office = LibreOffice.from_settings(resources.settings)
    handlers = ConvertHandlers(resources, office)
    subscribe(resources, ConvertReport, on_give_up=handlers.give_up)(handlers.convert_report)
    # Warm LibreOffice before the first message arrives; stop it (and its whole process
    # group) on shutdown, letting a running conversion finish first.
    return make_app(
        resources,
        on_startup=[office.start],
        on_shutdown=[office.close],
        checks={"libreoffice": lambda: office_answers(office)},
    )


async def office_answers(office: LibreOffice) -> bool:
    """Readiness: this worker's LibreOffice runs and answers over UNO (a setting read)."""
    return office.running and await office.setting(MACRO_SECURITY, "MacroSecurityLevel") == 3
