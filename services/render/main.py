"""Render service: `faststream run --factory services.render.main:create_app`."""

from __future__ import annotations

from collections.abc import Mapping

from faststream import FastStream

from contracts.v1 import RenderReport
from services.infra.consumer import subscribe
from services.infra.service import Resources, make_app
from services.infra.templates import TemplateStore
from services.render.adapters import Templates
from services.render.handlers import RenderHandlers


def create_app(
    resources: Resources | None = None, templates: Mapping[str, bytes] | None = None
) -> FastStream:
    """`templates`: extra named templates beside the shipped `default` (tests, local labs)."""
    resources = resources or Resources.create("render")
    handlers = RenderHandlers(resources, Templates(templates, TemplateStore(resources.db)))
    subscribe(resources, RenderReport, on_give_up=handlers.give_up)(handlers.render_report)

    return make_app(resources)
