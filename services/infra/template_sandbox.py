"""docxtpl rendering in a hardened Jinja sandbox: the one environment a lab's template (untrusted
code in a Word file) ever runs in, for real reports and for trial renders alike.

`ImmutableSandboxedEnvironment` stops attribute tricks (`lipsum.__globals__`) and mutation;
`StrictUndefined` makes a misspelt variable an error, not a blank on a medical report;
autoescape keeps `< 5.0` (docxtpl drops `<` otherwise). The sandbox does not stop output
bombs, so this environment also refuses: big repetitions and exponents, big ranges, and big
widths or precisions in `format`, `%`, `center`/`ljust`/`rjust`/`zfill` and the `center`,
`indent`, `format`, `wordwrap` and `truncate` filters.
"""

from __future__ import annotations

import io
import re
import string
import zipfile
from collections.abc import Mapping
from typing import Any

import jinja2
from docx.opc.exceptions import PackageNotFoundError
from docx.shared import Mm, Pt
from docxtpl import DocxTemplate, InlineImage
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from lxml import etree

from services.infra.verification import Verification

QR_MM = 22  # the printed QR code's side
MAX_REPEAT = 100_000  # characters or items a `*` may make
MAX_EXPONENT = 100
MAX_RANGE = 10_000  # items a `range()` may make
MAX_WIDTH = 1_000  # width or precision of any padding or formatting
WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(\*|\d+)?(?:\.(\*|\d+))?")
FORMAT_NUMBERS = re.compile(r"\d+")


class TemplateRenderError(Exception):
    """The template cannot be rendered with this data: the text says why, for lab staff."""


def _too_wide(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_WIDTH


def check_format_string(pattern: str) -> None:
    """Refuse a `str.format` pattern with a width or precision above MAX_WIDTH (or nested)."""
    try:
        parts = list(string.Formatter().parse(pattern))
    except ValueError as error:
        raise SecurityError(f"invalid format text: {error}") from None
    for _, _, spec, _ in parts:
        if not spec:
            continue
        if "{" in spec:
            raise SecurityError("nested format widths are not allowed in a template")
        if any(int(number) > MAX_WIDTH for number in FORMAT_NUMBERS.findall(spec)):
            raise SecurityError(f"format width over {MAX_WIDTH} characters in a template")


def check_percent_string(pattern: str) -> None:
    """Refuse a `%` pattern with a width or precision above MAX_WIDTH, or a `*` width."""
    for match in PERCENT_SPEC.finditer(pattern):
        for number in match.groups():
            if number == "*" or (number and int(number) > MAX_WIDTH):
                raise SecurityError(f"'%' width over {MAX_WIDTH} characters in a template")


def safe_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise SecurityError(f"a range of more than {MAX_RANGE} items in a template")
    return numbers


class ReportEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self) -> None:
        super().__init__(autoescape=True, undefined=jinja2.StrictUndefined)
        self.globals["range"] = safe_range
        filters = self.filters
        for name in ("center", "indent", "wordwrap", "truncate"):
            filters[name] = self._width_checked(filters[name])
        plain_format = filters["format"]

        def checked_format(value: Any, *args: Any, **kwargs: Any) -> Any:
            check_percent_string(str(value))
            return plain_format(value, *args, **kwargs)

        filters["format"] = checked_format

    @staticmethod
    def _width_checked(filter_function: Any) -> Any:
        def checked(*args: Any, **kwargs: Any) -> Any:
            if any(_too_wide(a) for a in (*args[1:], *kwargs.values())):
                raise SecurityError(f"a width over {MAX_WIDTH} characters in a template")
            return filter_function(*args, **kwargs)

        return checked

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > MAX_EXPONENT:
            raise SecurityError("exponent too large in template")
        if operator == "*":
            sizes = [len(x) for x in (left, right) if isinstance(x, str | list | tuple)]
            counts = [x for x in (left, right) if isinstance(x, int)]
            if sizes and counts and sizes[0] * max(counts[0], 0) > MAX_REPEAT:
                raise SecurityError("repetition too large in template")
        if operator == "%" and isinstance(left, str):
            check_percent_string(left)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        target = getattr(__obj, "__wrapped__", __obj)
        owner = getattr(target, "__self__", None)
        name = getattr(target, "__name__", "")
        if isinstance(owner, str):
            if name in WIDTH_METHODS and any(_too_wide(a) for a in (*args, *kwargs.values())):
                raise SecurityError(f"a width over {MAX_WIDTH} characters in a template")
            if name in {"format", "format_map"}:
                check_format_string(owner)
        return super().call(__context, __obj, *args, **kwargs)


class _QrImage(InlineImage):
    """The verification QR as a template field; notes whether the template printed it."""

    used = False

    def __str__(self) -> str:
        self.used = True
        return str(super().__str__())

    __html__ = __str__


def _add_verification(document: DocxTemplate, qr: _QrImage, verification: Verification) -> None:
    """The template has no `{{ verification_qr }}`: print the QR and URL after the last line."""
    paragraph = document.docx.add_paragraph()
    paragraph.add_run().add_picture(io.BytesIO(verification.qr_png), width=Mm(QR_MM))
    run = paragraph.add_run(f"  Check this report is genuine: {verification.url}")
    run.font.size = Pt(8)


def render_docx(
    template: bytes,
    context: Mapping[str, Any],
    env: jinja2.Environment | None = None,
    verification: Verification | None = None,
) -> bytes:
    """Fill `template` (a .docx with docxtpl tags) with `context`; the .docx bytes (sync).

    With `verification`, the context gains `verification_url` and `verification_qr` (the QR
    image), and a template that does not print the QR gets it after its last line.

    Raises TemplateRenderError for a template that cannot render (not a Word file, Jinja
    syntax, unsafe or unknown names, a loop or number that runs away).
    """
    env = env or ReportEnvironment()
    try:
        document = DocxTemplate(io.BytesIO(template))
        values = dict(context)
        qr = None
        if verification is not None:
            qr = _QrImage(document, io.BytesIO(verification.qr_png), width=Mm(QR_MM))
            values |= {"verification_url": verification.url, "verification_qr": qr}
        # docxtpl re-parses per render; a fresh DocxTemplate keeps renders independent.
        document.render(values, env, autoescape=True)
        if verification is not None and qr is not None and not qr.used:
            _add_verification(document, qr, verification)
        out = io.BytesIO()
        document.save(out)
    except SecurityError as error:
        raise TemplateRenderError(f"template uses something not allowed: {error}") from None
    except jinja2.TemplateSyntaxError as error:
        raise TemplateRenderError(
            f"template has a syntax error near line {error.lineno}: {error.message}"
        ) from None
    except jinja2.UndefinedError as error:
        raise TemplateRenderError(f"template uses an unknown field: {error.message}") from None
    except jinja2.TemplateError as error:
        raise TemplateRenderError(f"template error: {error}") from None
    except (OverflowError, MemoryError, RecursionError) as error:
        raise TemplateRenderError(
            "template makes something too large to print: it needs too much memory or time "
            f"({type(error).__name__})"
        ) from None
    except (ValueError, TypeError, ArithmeticError, LookupError) as error:
        raise TemplateRenderError(f"template cannot be filled in: {error}") from None
    except (zipfile.BadZipFile, PackageNotFoundError, etree.XMLSyntaxError):
        raise TemplateRenderError("template is not a valid Word (.docx) file") from None
    return out.getvalue()
