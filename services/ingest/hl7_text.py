"""HL7 v2 text as it is to be printed: one leaf of a segment, its escape sequences decoded
(v2.5.1 chapter 2.7). Pure.

python-hl7 unescapes too, but not as a report needs it: it turns highlighting (\\H\\, \\N\\)
into "_", line breaks into carriage returns, hex bytes into one character each (so UTF-8 in
\\XC3A9\\ became "Ã©"), drops the text after a lone escape character, and logs the whole value
(patient data) when it meets a sequence it does not know. Here:

- \\F\\ \\S\\ \\T\\ \\R\\ \\E\\ are the message's own field, component, subcomponent, repetition
  and escape characters (MSH-1, MSH-2);
- \\Xhh...\\ are bytes, read as UTF-8 (else Windows-1252);
- \\.br\\ and \\.ce\\ start a new line, \\.sp n\\ n new lines, \\.sk n\\ n spaces (both at most
  MAX_REPEAT); \\.fi\\ \\.nf\\ \\.in\\ \\.ti\\ (fill and indent) and highlighting print nothing;
- \\Cxxyy\\ \\Mxxyyzz\\ (character set switches) and \\Zxxx\\ (a sender's own codes) print nothing;
- an escape character with no closing one, or a sequence that is none of these, stays as
  written: a value is never silently cut short.
"""

from __future__ import annotations

from typing import Any

MAX_REPEAT = 10  # \.sp99999\ must not make a value of 99,999 blank lines


def leaf(segment: Any, field: int, repeat: int = 1, component: int = 1, sub: int = 1) -> str:
    """The escaped text at one position, as python-hl7's `extract_field` finds it (a shorter
    tree gives its first leaf; a position not there gives ""), without its unescaping.
    Raises IndexError where `extract_field` does."""
    if field >= len(segment):
        if repeat == 1 and component == 1 and sub == 1:
            return ""
        raise IndexError(field)
    node = segment(field)(repeat)
    if isinstance(node, str):
        if component == 1 and sub == 1:
            return node
        raise IndexError(component)
    if component > len(node):
        if sub == 1:
            return ""
        raise IndexError(component)
    part = node(component)
    if isinstance(part, str):
        if sub == 1:
            return part
        raise IndexError(sub)
    return str(part(sub)) if sub <= len(part) else ""


def unescape(text: str, separators: str, escape: str) -> str:
    """`text` with its escape sequences decoded; `separators` is python-hl7's string of the
    segment, field, repetition, component and subcomponent separators ("\\r|~^&")."""
    if not escape or escape not in text:
        return text
    decoded: list[str] = []
    position = 0
    while (start := text.find(escape, position)) >= 0:
        end = text.find(escape, start + 1)
        if end < 0:
            break  # a lone escape character: the rest stays as written
        decoded.append(text[position:start])
        decoded.append(_sequence(text[start + 1 : end], separators, escape, text[start : end + 1]))
        position = end + 1
    decoded.append(text[position:])
    return "".join(decoded)


def _sequence(code: str, separators: str, escape: str, written: str) -> str:
    delimiters = {
        "F": separators[1:2],
        "R": separators[2:3],
        "S": separators[3:4],
        "T": separators[4:5],
        "E": escape,
    }
    if code in delimiters:
        return delimiters[code]
    if code in ("H", "N"):
        return ""
    if code.startswith("X") and len(code) > 1:
        return _hex(code[1:], written)
    command, argument = code[:3], code[3:].strip()
    if command in (".br", ".ce") and not argument:
        return "\n"
    if command in (".sp", ".sk"):
        count = _count(argument)
        if count is not None:
            return ("\n" if command == ".sp" else " ") * count
    if command in (".fi", ".nf") and not argument:
        return ""
    if command in (".in", ".ti") and _count(argument.lstrip("+-")) is not None:
        return ""
    if code[:1] in ("C", "M", "Z") and len(code) > 1:
        return ""
    return written


def _count(argument: str) -> int | None:
    """The number after a formatting command (none means one), at most MAX_REPEAT."""
    if not argument:
        return 1
    if not argument.lstrip("+").isdigit():
        return None
    return min(int(argument.lstrip("+")), MAX_REPEAT)


def _hex(digits: str, written: str) -> str:
    try:
        data = bytes.fromhex(digits)
    except ValueError:
        return written
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")
