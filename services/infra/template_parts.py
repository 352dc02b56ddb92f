"""What a .docx holds beyond text that a report template must not: macros, links to other
files or the internet, fields that fetch or run things, embedded programs. Each refusal names
the part of the .docx and says why, for a lab administrator."""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass

from lxml import etree

MAX_PARTS = 2_000
MAX_UNPACKED_BYTES = 100 * 1024 * 1024
W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
R = "http://schemas.openxmlformats.org/package/2006/relationships"
RELATIONSHIP_KINDS = {
    "image": "a picture loaded from the internet or another file (a remote image)",
    "attachedTemplate": "a linked Word template (attachedTemplate) loaded from elsewhere",
    "subDocument": "a linked sub-document loaded from elsewhere",
    "oleObject": "a linked OLE object loaded from elsewhere",
    "frame": "a frame loaded from elsewhere",
}
ALLOWED_EXTERNAL = ("hyperlink",)  # a clickable link: nothing is loaded
DANGEROUS_FIELDS = re.compile(r"\b(INCLUDEPICTURE|INCLUDETEXT|DDEAUTO|DDE|LINK|IMPORT)\b", re.I)
FIELD_WORDS = {
    "INCLUDEPICTURE": "an INCLUDEPICTURE field (loads a picture from elsewhere)",
    "INCLUDETEXT": "an INCLUDETEXT field (loads text from another file)",
    "DDE": "a DDE field (runs another program)",
    "DDEAUTO": "a DDEAUTO field (runs another program when opened)",
    "LINK": "a LINK field (loads content from another file)",
    "IMPORT": "an IMPORT field (loads a picture from elsewhere)",
}


@dataclass(frozen=True)
class Problem:
    part: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"part": self.part, "reason": self.reason}


def _parse(data: bytes) -> etree._Element | None:
    try:
        return etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return None


def _external_relationships(name: str, xml: bytes) -> list[Problem]:
    root = _parse(xml)
    if root is None:
        return [Problem(name, "this part is damaged (not readable XML)")]
    problems = []
    for rel in root.iter(f"{{{R}}}Relationship"):
        kind = rel.get("Type", "").rsplit("/", 1)[-1]
        if kind in ("aFChunk",):
            problems.append(Problem(name, "an embedded foreign document (altChunk)"))
        if rel.get("TargetMode") == "External" and kind not in ALLOWED_EXTERNAL:
            what = RELATIONSHIP_KINDS.get(kind, f"content loaded from elsewhere ({kind})")
            problems.append(
                Problem(name, f"{what}: {rel.get('Target', '')[:120]}. Embed it in the file.")
            )
    return problems


def _content_problems(name: str, xml: bytes) -> list[Problem]:
    root = _parse(xml)
    if root is None:
        return [Problem(name, "this part is damaged (not readable XML)")]
    problems = []
    if name.endswith("settings.xml") and root.find(f".//{{{W}}}attachedTemplate") is not None:
        problems.append(Problem(name, "the document is attached to another Word template"))
    instructions = "".join(t.text or "" for t in root.iter(f"{{{W}}}instrText"))
    instructions += " ".join(e.get(f"{{{W}}}instr", "") for e in root.iter(f"{{{W}}}fldSimple"))
    for word in sorted({m.upper() for m in DANGEROUS_FIELDS.findall(instructions)}):
        problems.append(Problem(name, f"{FIELD_WORDS[word]}; remove the field"))
    local = {etree.QName(e).localname for e in root.iter() if isinstance(e.tag, str)}
    if "altChunk" in local:
        problems.append(Problem(name, "an embedded foreign document (altChunk); remove it"))
    if "OLEObject" in local or "object" in local:
        problems.append(Problem(name, "an embedded object (OLE); paste it as a picture"))
    if "control" in local:
        problems.append(Problem(name, "an ActiveX control; remove it"))
    return problems


def part_problems(data: bytes) -> list[Problem]:
    """Everything in the .docx package a report template may not contain."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError):
        return [Problem("(file)", "this is not a Word .docx file")]
    if len(entries) > MAX_PARTS or sum(e.file_size for e in entries) > MAX_UNPACKED_BYTES:
        return [Problem("(file)", "the file unpacks to far too much data for a template")]
    names = {e.filename for e in entries}
    if "word/document.xml" not in names:
        return [Problem("(file)", "this is not a Word .docx file (no word/document.xml)")]
    problems = []
    for name in sorted(names):
        lower = name.lower()
        if "vbaproject" in lower or (lower.endswith(".bin") and "vba" in lower):
            problems.append(Problem(name, "the template contains macros (VBA); save as .docx"))
        elif lower.startswith("word/activex/"):
            problems.append(Problem(name, "the template contains an ActiveX control"))
        elif lower.startswith("word/embeddings/"):
            problems.append(Problem(name, "the template embeds a file or program (OLE object)"))
        elif lower.endswith(".rels"):
            problems.extend(_external_relationships(name, archive.read(name)))
        elif lower == "[content_types].xml":
            if b"macroEnabled" in archive.read(name):
                problems.append(Problem(name, "the file is a macro-enabled document (.docm)"))
        elif lower.startswith("word/") and lower.endswith(".xml"):
            problems.extend(_content_problems(name, archive.read(name)))
    return list(dict.fromkeys(problems))
