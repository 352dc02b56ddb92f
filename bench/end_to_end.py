"""End-to-end throughput: N reports from upload to the last SMS, every service its own
process, against the naive path (docxtpl + one `soffice --convert-to pdf` launch per
document) on a sample, measured in the same run. Prints reports/s, medians and the ratio.

    .venv/bin/python bench/end_to_end.py [--reports 200] [--converters 2] [--naive-sample 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bench.pdfa_cost import pdfa_cost, sample_documents
from devtools.admin_client import AdminClient
from devtools.demo import demo_sheet
from devtools.launcher import WORKERS, Stack, local_settings, mongodb_server, rabbitmq_vhost
from services.gateway.accounts_store import create_user
from services.infra.database import Database, connect, ensure_indexes
from services.infra.settings import Settings
from services.render import adapters as render_adapters
from services.render import logic as render_logic

PASSWORD = "benchmark password 1"


async def pipeline(db: Database, stack: Stack, settings: Settings, reports: int) -> dict[str, Any]:
    await stack.wait_ready()
    await create_user(db, "bench", PASSWORD)
    sheet = demo_sheet(reports)
    admin = AdminClient(settings.public_base_url)
    try:
        await admin.login("bench", PASSWORD)
        started = time.monotonic()
        started_at = datetime.now(UTC)
        await admin.upload("bench.xlsx", sheet)
    finally:
        await admin.close()
    while (sent := await db.outbox.count_documents({})) < reports:
        stack.check_alive()
        if time.monotonic() - started > 900:
            raise TimeoutError(f"only {sent}/{reports} SMS after 900 s")
        await asyncio.sleep(0.2)
    elapsed = time.monotonic() - started
    latencies = []
    async for report in db.reports.find({}, {"history": 1}):
        notified = next(h["at"] for h in report["history"] if h["status"] == "notified")
        latencies.append((notified - started_at).total_seconds())
    failed = await db.reports.count_documents({"status": "failed"})
    return {
        "reports": reports,
        "seconds": round(elapsed, 2),
        "reports_per_s": round(reports / elapsed, 2),
        "median_upload_to_sms_s": round(statistics.median(latencies), 2),
        "failed": failed,
    }


async def sample_reports(db: Database, count: int) -> list[dict[str, Any]]:
    return await db.reports.find({}).limit(count).to_list()


def naive(reports: list[dict[str, Any]], settings: Settings) -> dict[str, Any]:
    """docxtpl render + one soffice launch per document, as a script would do it."""
    template = render_adapters.DEFAULT_TEMPLATE_PATH.read_bytes()
    lab = render_logic.Lab(settings.lab_name, settings.lab_address, settings.lab_phone)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        profile = f"-env:UserInstallation=file://{work / 'profile'}"

        def convert(path: Path) -> None:
            subprocess.run(
                [
                    settings.soffice_path,
                    profile,
                    "--headless",
                    "--convert-to",
                    "pdf",
                    "--outdir",
                    str(work),
                    str(path),
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )

        warmup = work / "warmup.docx"
        warmup.write_bytes(
            render_adapters.render_docx(
                template, render_logic.build_context(reports[0], lab, date.today())
            )
        )
        convert(warmup)  # the first launch also creates the profile: not counted
        per_document = []
        for report in reports:
            begun = time.monotonic()
            path = work / f"{report['_id']}.docx"
            path.write_bytes(
                render_adapters.render_docx(
                    template, render_logic.build_context(report, lab, date.today())
                )
            )
            convert(path)
            assert path.with_suffix(".pdf").stat().st_size > 0
            per_document.append(time.monotonic() - begun)
    total = sum(per_document)
    return {
        "reports": len(reports),
        "seconds": round(total, 2),
        "reports_per_s": round(len(reports) / total, 2),
        "median_per_report_s": round(statistics.median(per_document), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=int, default=200)
    parser.add_argument("--converters", type=int, default=2)
    parser.add_argument("--naive-sample", type=int, default=10)
    parser.add_argument("--pdfa-rounds", type=int, default=5, help="plain vs PDF/A rounds")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder, contextlib.ExitStack() as stack_of_things:
        var = Path(folder)
        mongodb_uri = stack_of_things.enter_context(mongodb_server(var / "mongodb"))
        amqp_url = stack_of_things.enter_context(rabbitmq_vhost())
        database = f"bench_{uuid.uuid4().hex[:6]}"
        settings = local_settings(mongodb_uri, amqp_url, database, var / "work")
        stack = stack_of_things.enter_context(
            Stack(settings, var / "logs", {**WORKERS, "convert": args.converters})
        )

        async def measure() -> tuple[dict[str, Any], list[dict[str, Any]]]:
            client, db = connect(settings)
            try:
                await ensure_indexes(db)
                figures = await pipeline(db, stack, settings, args.reports)
                return figures, await sample_reports(db, args.naive_sample)
            finally:
                await client.close()

        resultflow, sample = asyncio.run(measure())
        stack.stop()  # the naive path gets the machine to itself, as it would in real life
        baseline = naive(sample, settings)
        pdfa = asyncio.run(
            pdfa_cost(sample_documents(), settings.soffice_path, var / "pdfa", args.pdfa_rounds)
        )

    ratio = resultflow["reports_per_s"] / baseline["reports_per_s"]
    print(
        f"ResultFlow, {args.converters} converters: {resultflow['reports']} reports in "
        f"{resultflow['seconds']} s = {resultflow['reports_per_s']} reports/s "
        f"(median upload->SMS {resultflow['median_upload_to_sms_s']} s, "
        f"{resultflow['failed']} failed)"
    )
    print(
        f"Naive (docxtpl + soffice launch per document), sample of {baseline['reports']}: "
        f"{baseline['reports_per_s']} reports/s (median {baseline['median_per_report_s']} s "
        "per report)"
    )
    print(f"Ratio: {ratio:.1f}x")
    for name, row in pdfa.items():
        print(
            f"PDF/A-2b cost, {name}: median {row['plain_median_s']} s plain vs "
            f"{row['pdfa_median_s']} s PDF/A (x{row['time_ratio']}), size x{row['size_ratio']}"
        )
    print(
        json.dumps(
            {"resultflow": resultflow, "naive": baseline, "ratio": round(ratio, 2), "pdfa": pdfa}
        )
    )


if __name__ == "__main__":
    main()
