"""`resultflow audit list`: the audit trail for operators, filtered like the dashboard's page,
as JSON lines or the same spreadsheet-safe CSV."""

from __future__ import annotations

import csv
import io
import json

from services.infra.audit import Audit, staff
from services.infra.database import Database
from services.infra.settings import Settings
from tests.security.test_audit_chain import resultflow


async def test_audit_list_filters_newest_first_as_json_lines_or_csv(
    db: Database, settings: Settings
) -> None:
    audit = Audit(db)
    await audit.write("patient", "portal.check_failed", "r-1", {}, outcome="failure")
    await audit.write(staff("ann"), "report.released", "r-1", {"reason": "=1+1"}, role="reviewer")
    await audit.write("patient", "portal.check_passed", "r-1", {})
    await audit.write("cli:root", "user.created", None, {}, object="@evil")

    code, output = await resultflow(settings, "audit", "list", "--action", "portal.")
    assert code == 0, output
    listed = [json.loads(line) for line in output.splitlines()]
    assert [(e["seq"], e["action"], e["outcome"]) for e in listed] == [
        (3, "portal.check_passed", "success"),
        (1, "portal.check_failed", "failure"),
    ]

    code, output = await resultflow(settings, "audit", "list", "--csv", "--outcome", "success")
    assert code == 0, output
    rows = list(csv.DictReader(io.StringIO(output)))
    assert [r["action"] for r in rows] == ["user.created", "portal.check_passed", "report.released"]
    assert rows[0]["object"] == "'@evil" and rows[2]["role"] == "reviewer"
