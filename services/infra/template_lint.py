"""The template lint: what a lab's .docx asks for, compared with what a report provides, and
everything that keeps it from being used (`template_parts`, the sandbox, the trial render).

`lint(data)` answers one `LintResult`: `placeholders` (every field the template uses),
`unknown` (used but not provided nor mapped), `missing_required` (the patient's name and the
results table must be printed), `problems` (part of the .docx and reason) and `ok`.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jinja2
from docxtpl import DocxTemplate
from jinja2 import nodes

from services.infra.template_context import PATHS, REQUIRED, TOP_LEVEL
from services.infra.template_parts import Problem, part_problems
from services.infra.template_sandbox import ReportEnvironment
from services.infra.template_trial import trial_render

JINJA_NAMES = frozenset({"range", "loop", "lipsum", "dict", "cycler", "joiner", "namespace"})
TEMPLATE_PARTS = ("word/document.xml", "word/header", "word/footer", "word/footnotes.xml")


@dataclass
class LintResult:
    placeholders: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    missing_required: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    rendered: bytes | None = None  # the trial render, when it ran and succeeded

    @property
    def ok(self) -> bool:
        return not (self.unknown or self.missing_required or self.problems)

    def as_dict(self) -> dict[str, Any]:
        return {
            "placeholders": self.placeholders,
            "unknown": self.unknown,
            "missing_required": self.missing_required,
            "problems": [p.as_dict() for p in self.problems],
            "ok": self.ok,
        }


def _jinja_parts(data: bytes) -> Iterator[tuple[str, str]]:
    """(part name, Jinja source) of every part docxtpl renders, as docxtpl prepares it."""
    template = DocxTemplate(io.BytesIO(data))
    template.init_docx()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in sorted(archive.namelist()):
            if name.startswith(TEMPLATE_PARTS) and name.endswith(".xml"):
                xml = archive.read(name).decode("utf-8", errors="replace")
                yield name, template.patch_xml(xml)


def _paths(node: nodes.Node, loops: dict[str, str]) -> Iterator[str]:
    """Field paths a template node reads: `patient.name`, `results[].test`, `comments`."""
    if isinstance(node, nodes.For):
        yield from _paths(node.iter, loops)
        inner = dict(loops)
        source = _path_of(node.iter, loops)
        if isinstance(node.target, nodes.Name) and source:
            inner[node.target.name] = f"{source}[]"
        for child in (*node.body, *node.else_, *([node.test] if node.test else [])):
            yield from _paths(child, inner)
        return
    if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
        # A method call (`name.upper()`): the field is what it is called on.
        parts: list[nodes.Node | None] = [node.node.node, *node.args, *node.kwargs]
        for part in (*parts, node.dyn_args, node.dyn_kwargs):
            if part is not None:
                yield from _paths(part, loops)
        return
    path = _path_of(node, loops)
    if path is not None:
        yield path
        return
    for child in node.iter_child_nodes():
        yield from _paths(child, loops)


def _path_of(node: nodes.Node, loops: dict[str, str]) -> str | None:
    if isinstance(node, nodes.Name) and node.ctx == "load":
        if node.name in JINJA_NAMES:
            return None
        return loops.get(node.name, node.name)
    if isinstance(node, nodes.Getattr):
        base = _path_of(node.node, loops)
        return f"{base}.{node.attr}" if base else None
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        base = _path_of(node.node, loops)
        return f"{base}.{node.arg.value}" if base and isinstance(node.arg.value, str) else None
    return None


def _known(path: str, mapped: set[str]) -> bool:
    path = path.removesuffix("[]")  # an item of a list used whole (`{{ line }}` of comments)
    if path in PATHS or path.split(".")[0] in mapped:
        return True
    # `patient` alone, or a loop over `results` used whole, is fine; a made-up subfield is not.
    return path in TOP_LEVEL or any(p.startswith(f"{path}.") for p in PATHS)


def discover(data: bytes) -> tuple[list[str], list[Problem]]:
    """Every field path the template reads, and the parts whose Jinja the sandbox refuses."""
    env = ReportEnvironment()
    found: set[str] = set()
    problems = []
    for name, source in _jinja_parts(data):
        try:
            tree = env.parse(source)
        except jinja2.TemplateSyntaxError as error:
            problems.append(Problem(name, f"the {{{{ }}}} or {{% %}} tags are wrong: {error}"))
            continue
        assigned = (n.target for n in tree.find_all(nodes.Assign))
        local = {t.name for t in assigned if isinstance(t, nodes.Name)}
        paths = {p for p in _paths(tree, {}) if p.split(".")[0] not in local}
        for path in sorted(p for p in paths if "._" in p or p.startswith("_")):
            problems.append(
                Problem(name, f"{path} uses a hidden attribute: not allowed in a template")
            )
        found.update(paths)
    return sorted(found), problems


def lint(
    data: bytes, mapping: dict[str, dict[str, str]] | None = None, *, trial: bool = True
) -> LintResult:
    """Everything about `data` (a .docx) a lab administrator must fix before it is used."""
    mapping = mapping or {}
    result = LintResult(problems=part_problems(data))
    if any(p.part == "(file)" for p in result.problems):
        return result
    placeholders, syntax = discover(data)
    result.placeholders = placeholders
    result.problems += syntax
    mapped = set(mapping)
    result.unknown = [p for p in placeholders if not _known(p, mapped)]
    used = {p.split("[]")[0] for p in placeholders} | {p.split(".")[0] for p in placeholders}
    used |= set(placeholders)
    result.missing_required = [r for r in REQUIRED if r not in used]
    if trial and not result.problems and not result.unknown:
        rendered = trial_render(data, mapping)
        if rendered.problem:
            result.problems.append(Problem("word/document.xml", rendered.problem))
        result.rendered = rendered.docx
    return result
