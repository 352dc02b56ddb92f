"""The docs that are generated from code stay true to it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from contracts import topology
from contracts.schema import consumers_table

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "follow-one-report.md"
TABLE = re.compile(r"<!-- consumers-table:start -->\n(.*?)<!-- consumers-table:end -->", re.S)


def test_the_guide_shows_the_topologys_consumers_table() -> None:
    match = TABLE.search(GUIDE.read_text())
    assert match, "docs/follow-one-report.md lost its consumers-table markers"
    assert match.group(1) == consumers_table(), (
        "paste contracts.schema.consumers_table() between the markers:\n" + consumers_table()
    )


def test_every_file_the_guide_names_exists() -> None:
    named = set(re.findall(r"`((?:services|contracts)/[\w/]+\.py)`", GUIDE.read_text()))
    assert named
    assert sorted(path for path in named if not (ROOT / path).exists()) == []


def _called_names(folder: Path) -> set[str]:
    """Every name called as a function or method anywhere in a service folder."""
    names: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                names.add(func.id if isinstance(func, ast.Name) else getattr(func, "attr", ""))
    return names


def test_the_table_says_truly_which_service_publishes_which_message() -> None:
    services = {p.name for p in (ROOT / "services").iterdir() if (p / "main.py").exists()}
    calls = {service: _called_names(ROOT / "services" / service) for service in services}
    for queue in topology.QUEUES:
        # Status events are made by `Reports.advance`: its callers publish them.
        made_by = "advance" if queue.message.__name__ == "ReportStatusChanged" else None
        name = made_by or queue.message.__name__
        publishers = {service for service in services if name in calls[service]}
        expected = {p for p in queue.published_by if p in services}
        assert publishers == expected, queue.message.__name__
