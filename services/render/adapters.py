"""docxtpl rendering in a sandboxed Jinja environment, and where templates come from.

A lab's template is a Word file the lab controls, so its Jinja is untrusted code: it runs in
`ImmutableSandboxedEnvironment` (no attribute tricks like `lipsum.__globals__`, no mutation of
the context), with `StrictUndefined` (a misspelt variable is an error, not a blank on a
medical report) and autoescape (docxtpl otherwise drops `<` from `< 5.0`).
"""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from docx.opc.exceptions import PackageNotFoundError
from docxtpl import DocxTemplate
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from lxml import etree

DOCX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
DEFAULT_TEMPLATE_PATH = Path(__file__).with_name("templates") / "default.docx"

# Limits on template arithmetic: the sandbox stops code execution, not `'x' * 10**9`.
MAX_REPEAT = 100_000
MAX_EXPONENT = 100


class TemplateRenderError(Exception):
    """The template cannot be rendered with any data: the text says why, for lab staff."""


class ReportEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def __init__(self) -> None:
        super().__init__(autoescape=True, undefined=jinja2.StrictUndefined)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > MAX_EXPONENT:
            raise jinja2.sandbox.SecurityError("exponent too large in template")
        if operator == "*":
            sizes = [len(x) for x in (left, right) if isinstance(x, str | list | tuple)]
            counts = [x for x in (left, right) if isinstance(x, int)]
            if sizes and counts and sizes[0] * max(counts[0], 0) > MAX_REPEAT:
                raise jinja2.sandbox.SecurityError("repetition too large in template")
        return super().call_binop(context, operator, left, right)


def render_docx(
    template: bytes, context: Mapping[str, Any], env: jinja2.Environment | None = None
) -> bytes:
    """Fill `template` (a .docx with docxtpl tags) with `context`; the .docx bytes (sync).

    Raises TemplateRenderError for a template that cannot render (not a Word file, Jinja
    syntax, unsafe or unknown names).
    """
    env = env or ReportEnvironment()
    try:
        document = DocxTemplate(io.BytesIO(template))
        # docxtpl re-parses per render; a fresh DocxTemplate keeps renders independent.
        document.render(dict(context), env, autoescape=True)
        out = io.BytesIO()
        document.save(out)
    except jinja2.exceptions.SecurityError as error:
        raise TemplateRenderError(f"template uses something not allowed: {error}") from None
    except jinja2.TemplateSyntaxError as error:
        raise TemplateRenderError(
            f"template has a syntax error near line {error.lineno}: {error.message}"
        ) from None
    except jinja2.UndefinedError as error:
        raise TemplateRenderError(f"template uses an unknown field: {error.message}") from None
    except jinja2.TemplateError as error:
        raise TemplateRenderError(f"template error: {error}") from None
    except (zipfile.BadZipFile, PackageNotFoundError, KeyError, etree.XMLSyntaxError):
        raise TemplateRenderError("template is not a valid Word (.docx) file") from None
    return out.getvalue()


class ReportRenderer:
    """One template, rendered off the event loop (rendering is CPU-bound, ~30 ms)."""

    def __init__(self, template: bytes) -> None:
        self._template = template
        self._env = ReportEnvironment()

    def render_sync(self, context: Mapping[str, Any]) -> bytes:
        return render_docx(self._template, context, self._env)

    async def render(self, context: Mapping[str, Any]) -> bytes:
        return await asyncio.to_thread(self.render_sync, context)


class UnknownTemplateError(LookupError):
    pass


class Templates:
    """Templates by name. Today: the shipped default plus any given at start-up.

    Seam for templates stored in GridFS (a later issue): `get` is async so a store-backed
    lookup can replace the dictionary without touching the handlers.
    """

    def __init__(self, extra: Mapping[str, bytes] | None = None) -> None:
        templates = {"default": DEFAULT_TEMPLATE_PATH.read_bytes(), **(extra or {})}
        self._renderers = {name: ReportRenderer(data) for name, data in templates.items()}

    async def get(self, name: str) -> ReportRenderer:
        try:
            return self._renderers[name]
        except KeyError:
            raise UnknownTemplateError(name) from None
