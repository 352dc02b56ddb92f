"""The warm LibreOffice adapter on its own: security profile, recycling, crashes, shutdown."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import docx
import pytest
from pypdf import PdfReader

from services.convert.adapters import LibreOffice, OfficeFailureError
from tests.support import office_processes

SOFFICE_BIN = "/usr/lib/libreoffice/program/soffice.bin"


def make_docx(text: str) -> bytes:
    document = docx.Document()
    document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def live_members(group: int) -> list[int]:
    """Pids of the live (non-zombie) processes in a process group."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def pdf_text(pdf: bytes) -> str:
    return " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


@pytest.fixture
async def office(tmp_path: Path) -> AsyncIterator[LibreOffice]:
    office = LibreOffice("/usr/bin/soffice", tmp_path, timeout=20, restart_every=2)
    await office.start()
    yield office
    await office.close()


async def test_profile_forbids_macros_and_untrusted_links(office: LibreOffice) -> None:
    node = "/org.openoffice.Office.Common/Security/Scripting"
    assert await office.setting(node, "MacroSecurityLevel") == 3
    assert await office.setting(node, "DisableMacrosExecution") is True
    assert await office.setting(node, "BlockUntrustedRefererLinks") is True


async def test_libreoffice_is_recycled_after_the_configured_number_of_documents(
    office: LibreOffice,
) -> None:
    first_group = office.process_group
    assert first_group is not None
    for n in range(3):
        assert f"document {n}" in pdf_text(
            await office.convert(make_docx(f"document {n}"), title="t", subject="s")
        )
    assert office.starts == 2
    assert office.process_group != first_group
    assert live_members(first_group) == []


async def test_crashed_libreoffice_is_replaced_and_converts_again(office: LibreOffice) -> None:
    group = office.process_group
    assert group is not None
    os.killpg(group, signal.SIGKILL)
    document = make_docx("after the crash")
    try:
        pdf = await office.convert(document, title="t", subject="s")
    except OfficeFailureError:
        # The bridge died under the call: the office was replaced, the caller retries.
        pdf = await office.convert(document, title="t", subject="s")
    assert "after the crash" in pdf_text(pdf)
    assert office.starts == 2


async def test_hanging_conversion_times_out_and_the_next_one_succeeds(tmp_path: Path) -> None:
    office = LibreOffice("/usr/bin/soffice", tmp_path, timeout=2)
    await office.start()
    try:
        hung = office.process_group
        assert hung is not None
        os.killpg(hung, signal.SIGSTOP)
        with pytest.raises(OfficeFailureError, match="longer than 2 s"):
            await office.convert(make_docx("stuck"), title="t", subject="s")
        assert live_members(hung) == []
        assert "unstuck" in pdf_text(
            await office.convert(make_docx("unstuck"), title="t", subject="s")
        )
    finally:
        await office.close()


async def test_bare_soffice_bin_with_a_new_profile_survives_its_restart_request(
    tmp_path: Path,
) -> None:
    # soffice.bin without oosplash exits with 81 after creating a profile; it is relaunched.
    office = LibreOffice(SOFFICE_BIN, tmp_path, timeout=20)
    try:
        await office.start()
        assert "bare" in pdf_text(await office.convert(make_docx("bare"), title="t", subject="s"))
    finally:
        await office.close()


async def test_close_ends_every_process_and_removes_the_profile(tmp_path: Path) -> None:
    office = LibreOffice("/usr/bin/soffice", tmp_path, timeout=20)
    await office.start()
    group = office.process_group
    assert group is not None
    assert len(live_members(group)) >= 1
    await office.close()
    assert live_members(group) == []
    assert not office.home.exists()
    assert not office.running


def office_groups(work_dir: Path) -> set[int]:
    """Process groups of the live LibreOffices whose profile lies under `work_dir`."""
    return {group for _, group in office_processes(work_dir)}


def pipe_files() -> set[Path]:
    return set(Path("/tmp").glob("OSL_PIPE_*"))


WORKER = """
import asyncio, sys
from pathlib import Path
from services.convert.adapters import LibreOffice

async def main():
    office = LibreOffice("/usr/bin/soffice", Path(sys.argv[1]))
    await office.start()
    print("started", flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


async def test_libreoffice_of_a_killed_worker_is_reaped_by_the_next_worker(
    tmp_path: Path,
) -> None:
    # A worker process killed outright cannot stop its LibreOffice (own session): the next
    # worker sharing the work directory finds and kills the orphan.
    pipes_before = pipe_files()
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WORKER, str(tmp_path), stdout=asyncio.subprocess.PIPE
    )
    orphaned: set[int] = set()
    try:
        assert worker.stdout is not None
        while (line := await asyncio.wait_for(worker.stdout.readline(), 60)) != b"started\n":
            assert line, "the worker died before its LibreOffice started"
        orphaned = office_groups(tmp_path)
        assert len(orphaned) == 1
        worker.kill()
        await worker.wait()
        assert office_groups(tmp_path) == orphaned, "the office outlives its killed worker"
        stale = pipe_files() - pipes_before
        assert stale, "a killed office leaves its pipe socket files in /tmp"

        office = LibreOffice("/usr/bin/soffice", tmp_path, timeout=20)
        await office.start()
        try:
            assert office_groups(tmp_path) == {office.process_group}
            assert [home.name for home in tmp_path.glob("office-*")] == [office.home.name]
        finally:
            await office.close()
        assert not stale & pipe_files()
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
        for group in orphaned & office_groups(tmp_path):
            os.killpg(group, signal.SIGKILL)


async def test_conversion_outliving_shutdown_does_not_start_a_new_office(
    tmp_path: Path,
) -> None:
    office = LibreOffice("/usr/bin/soffice", tmp_path, timeout=20)
    await office.start()
    group = office.process_group
    assert group is not None
    os.killpg(group, signal.SIGSTOP)  # the conversion in flight never finishes
    conversion = asyncio.create_task(office.convert(make_docx("late"), title="t", subject="s"))
    await asyncio.sleep(0.5)
    await office.close(grace=1)
    with pytest.raises(OfficeFailureError, match="stopped"):
        await conversion
    assert office_groups(tmp_path) == set()
    assert not office.running
