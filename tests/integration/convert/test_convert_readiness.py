"""A convert worker is ready only while its LibreOffice answers; a crashed LibreOffice shows
in readiness and metrics until the next document restarts it."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from services.convert.adapters import LibreOffice
from services.convert.main import office_answers
from services.infra.health import HealthServer
from services.infra.settings import Settings
from tests.integration.convert.test_convert_office import make_docx
from tests.support import eventually


@pytest.fixture
async def office(tmp_path: Path) -> AsyncIterator[LibreOffice]:
    office = LibreOffice("/usr/bin/soffice", tmp_path / "office", timeout=30)
    await office.start()
    yield office
    await office.close()


@pytest.fixture
async def health(settings: Settings, office: LibreOffice) -> AsyncIterator[HealthServer]:
    server = HealthServer(settings, "convert", {"libreoffice": lambda: office_answers(office)})
    await server.start()
    yield server
    await server.stop()


async def readiness(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as http, http.get(url + "/readyz") as response:
        return response.status, await response.json()


async def metrics(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as response:
        return await response.text()


def sample(text: str, series: str) -> float:
    """A series' value in Prometheus text; 0 when it is not there yet."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


async def test_readiness_follows_libreoffice_and_a_restart_shows_in_the_metrics(
    office: LibreOffice, health: HealthServer
) -> None:
    assert await readiness(health.url) == (200, {"status": "ok", "libreoffice": True})
    restarts = 'resultflow_libreoffice_restarts_total{reason="not running"}'
    before = sample(await metrics(health.url), restarts)

    group = office.process_group
    assert group is not None
    os.killpg(group, signal.SIGKILL)
    await eventually(lambda: not office.running, timeout=10)

    assert await readiness(health.url) == (503, {"status": "unavailable", "libreoffice": False})
    assert 'resultflow_ready{check="libreoffice"} 0.0' in await metrics(health.url)

    pdf = await office.convert(make_docx("after a crash"), title="t", subject="s")
    assert pdf.startswith(b"%PDF")
    assert await readiness(health.url) == (200, {"status": "ok", "libreoffice": True})
    assert sample(await metrics(health.url), restarts) == before + 1
