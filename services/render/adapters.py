"""Rendering a report's template off the event loop, and where templates come from.

The sandboxed environment and `render_docx` are `services.infra.template_sandbox` (shared
with the template lint's trial render and the preview).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from services.infra.template_context import apply_mapping
from services.infra.template_sandbox import (
    MAX_EXPONENT,
    MAX_REPEAT,
    ReportEnvironment,
    TemplateRenderError,
    render_docx,
)
from services.infra.templates import TemplateStore
from services.infra.verification import Verification

__all__ = ["MAX_EXPONENT", "MAX_REPEAT", "ReportEnvironment", "TemplateRenderError", "render_docx"]

DOCX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
DEFAULT_TEMPLATE_PATH = Path(__file__).with_name("templates") / "default.docx"


class ReportRenderer:
    """One template version, rendered off the event loop (CPU-bound, ~30 ms), with its field
    mapping applied and the verification QR printed."""

    def __init__(
        self, template: bytes, *, version: int = 0, mapping: Mapping[str, Any] | None = None
    ) -> None:
        self._template = template
        self._env = ReportEnvironment()
        self.version = version  # 0: the shipped default
        self.mapping = dict(mapping or {})

    def render_sync(
        self, context: Mapping[str, Any], verification: Verification | None = None
    ) -> bytes:
        values = apply_mapping(dict(context), self.mapping)
        return render_docx(self._template, values, self._env, verification)

    async def render(
        self, context: Mapping[str, Any], verification: Verification | None = None
    ) -> bytes:
        return await asyncio.to_thread(self.render_sync, context, verification)


class UnknownTemplateError(LookupError):
    pass


class Templates:
    """Templates by name: the active (or a given) version stored by the lab (`TemplateStore`),
    else the shipped default and any given at start-up. Renderers are cached by version:
    a version never changes once uploaded (only its mapping, which is part of the key)."""

    def __init__(
        self, extra: Mapping[str, bytes] | None = None, store: TemplateStore | None = None
    ) -> None:
        templates = {"default": DEFAULT_TEMPLATE_PATH.read_bytes(), **(extra or {})}
        self._builtin = {name: ReportRenderer(data) for name, data in templates.items()}
        self._store = store
        self._cache: dict[tuple[str, int, str], ReportRenderer] = {}

    async def get(self, name: str, version: int | None = None) -> ReportRenderer:
        """`version`: the one a report was made with (re-rendering); None: the active one."""
        if self._store is not None and version != 0:
            if version is None:
                stored = await self._store.active(name)
            else:
                stored = await self._store.get(name, version)
            if stored is not None:
                key = (name, stored["version"], repr(sorted(stored["mapping"].items())))
                if key not in self._cache:
                    data = await self._store.data(stored)
                    self._cache[key] = ReportRenderer(
                        data, version=stored["version"], mapping=stored["mapping"]
                    )
                return self._cache[key]
            if version is not None:
                raise UnknownTemplateError(f"{name} version {version}")
        try:
            return self._builtin[name]
        except KeyError:
            raise UnknownTemplateError(name) from None
