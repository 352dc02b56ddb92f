"""What PDF/A-2b (tagged, fonts embedded, XMP) costs over a plain PDF: the same documents on
the same warm LibreOffice, alternating plain and PDF/A, in one run. Prints medians per
document, the ratio and the file sizes.

    .venv/bin/python -m bench.pdfa_cost [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from services.convert.adapters import LibreOffice
from services.infra.template_context import sample_context
from services.infra.template_sandbox import render_docx
from services.infra.verification import Verification
from services.render.adapters import DEFAULT_TEMPLATE_PATH


def sample_documents() -> dict[str, bytes]:
    """A one-page report and a 40-result one (spans pages), on the shipped template."""
    template = DEFAULT_TEMPLATE_PATH.read_bytes()
    verification = Verification.of("https://lab.example/v/SAMPLE000000")
    long = sample_context()
    short = {**long, "results": long["results"][:5], "comments": []}
    return {
        "one_page": render_docx(template, short, verification=verification),
        "forty_results": render_docx(template, long, verification=verification),
    }


async def pdfa_cost(
    documents: dict[str, bytes], soffice: str, work_dir: Path, rounds: int
) -> dict[str, Any]:
    office = LibreOffice(soffice, work_dir)
    await office.start()
    figures: dict[str, Any] = {}
    try:
        for name, docx in documents.items():
            times: dict[bool, list[float]] = {False: [], True: []}
            sizes: dict[bool, int] = {}
            for _ in range(rounds + 1):  # the first round warms up and is not counted
                for pdfa in (False, True):
                    begun = time.monotonic()
                    pdf = await office.convert(
                        docx, title="Laboratory report", subject="bench", author="Lab", pdfa=pdfa
                    )
                    times[pdfa].append(time.monotonic() - begun)
                    sizes[pdfa] = len(pdf)
            plain = statistics.median(times[False][1:])
            pdfa_median = statistics.median(times[True][1:])
            figures[name] = {
                "plain_median_s": round(plain, 4),
                "pdfa_median_s": round(pdfa_median, 4),
                "time_ratio": round(pdfa_median / plain, 2),
                "plain_bytes": sizes[False],
                "pdfa_bytes": sizes[True],
                "size_ratio": round(sizes[True] / sizes[False], 2),
            }
    finally:
        await office.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--soffice", default="soffice")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        figures = asyncio.run(
            pdfa_cost(sample_documents(), args.soffice, Path(folder), args.rounds)
        )
    for name, row in figures.items():
        print(
            f"{name}: plain {row['plain_median_s']} s, PDF/A-2b {row['pdfa_median_s']} s "
            f"(x{row['time_ratio']}); {row['plain_bytes']} -> {row['pdfa_bytes']} bytes "
            f"(x{row['size_ratio']})"
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
