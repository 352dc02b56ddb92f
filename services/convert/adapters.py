"""The outside world of the convert stage: a warm LibreOffice, owned by this process, over UNO.
(Its process hygiene, the profile, orphans and pipes, is in `office_process`.)

One `soffice` per worker process, started once with its own profile and kept warm; each
document is loaded hidden, read-only and with macros never executed, exported to PDF and
closed. One conversion at a time per process (LibreOffice is effectively single-threaded);
more throughput means more processes. A conversion that hangs, or a bridge that dies, gets
the whole process group killed and a fresh LibreOffice started, and the caller retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import structlog
import uno  # Debian's python3-uno: importable only in the system Python 3.11 the venv uses
from com.sun.star.connection import NoConnectException
from com.sun.star.io import IOException
from com.sun.star.lang import IllegalArgumentException
from com.sun.star.uno import Exception as UnoException

from services.convert.export import ExportOptions, export_arguments, property_value
from services.convert.logic import looks_like_docx, looks_like_pdf, should_restart
from services.convert.office_process import (
    kill_group,
    launch,
    reap_orphaned_offices,
    remove_pipes,
    write_profile,
)
from services.infra.metrics import LIBREOFFICE_RESTARTS
from services.infra.settings import Settings

log = structlog.get_logger()

# Exit code of a LibreOffice that has just created a brand-new profile and asks to be
# started again (oosplash does that itself; a bare soffice.bin does not).
RESTART_REQUESTED = 81
MAX_LAUNCHES = 3
# com.sun.star.document.MacroExecMode.NEVER_EXECUTE and UpdateDocMode.NO_UPDATE.
NEVER_EXECUTE = 0
NO_UPDATE = 0
DOCX_FILTER = "MS Word 2007 XML"


class ConversionError(Exception):
    """A document could not be converted."""


class DocumentRejectedError(ConversionError):
    """LibreOffice cannot read this document: retrying will never help."""


class OfficeFailureError(ConversionError):
    """LibreOffice hung, died or would not start; it was replaced, so a retry may succeed."""


_local_context_lock = threading.Lock()
_local_context: Any = None


def _resolver() -> Any:
    global _local_context
    with _local_context_lock:
        if _local_context is None:
            _local_context = uno.getComponentContext()
        return _local_context.ServiceManager.createInstanceWithContext(
            "com.sun.star.bridge.UnoUrlResolver", _local_context
        )


class LibreOffice:
    """A warm headless LibreOffice owned by this process; `convert` turns .docx into PDF."""

    def __init__(
        self,
        soffice_path: str,
        work_dir: Path,
        *,
        timeout: float = 60.0,
        restart_every: int = 500,
        start_timeout: float = 60.0,
    ) -> None:
        self._soffice = soffice_path
        # Own directory per instance: two workers never share a profile (a second soffice
        # on the same profile hands its job to the first one and quits).
        self.home = Path(work_dir) / f"office-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.profile = self.home / "profile"
        self._jobs = self.home / "jobs"
        self._timeout = timeout
        self._restart_every = restart_every
        self._start_timeout = start_timeout
        self._lock = asyncio.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._pipe = ""
        self._context: Any = None
        self._desktop: Any = None
        self._converted = 0
        self._closed = False
        self.starts = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> LibreOffice:
        return cls(
            settings.soffice_path,
            settings.work_dir,
            timeout=settings.convert_timeout_seconds,
            restart_every=settings.convert_restart_every,
        )

    @property
    def process_group(self) -> int | None:
        """The process group of the running soffice -> oosplash -> soffice.bin tree."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    async def start(self) -> None:
        async with self._lock:
            self._closed = False
            if not self.running:
                await asyncio.to_thread(reap_orphaned_offices, self.home.parent)
                await asyncio.to_thread(self._start_sync)

    async def convert(
        self,
        docx: bytes,
        *,
        title: str,
        subject: str,
        author: str = "",
        language: str = "en-GB",
        pdfa: bool = True,
    ) -> bytes:
        """The PDF of `docx`, with `title`, `subject`, `author` (the lab) and `language` in its
        properties and XMP; `pdfa`: PDF/A-2b and tagged (accessible), else a plain PDF."""
        options = ExportOptions(title, subject, author, language, pdfa)
        if not looks_like_docx(docx):
            raise DocumentRejectedError("the file is not a .docx (not a zip container)")
        async with self._lock:
            if self._closed:
                raise OfficeFailureError("LibreOffice was stopped")
            if not self.running:
                await asyncio.to_thread(self._restart_sync, "not running")
            elif should_restart(self._converted, self._restart_every):
                await asyncio.to_thread(self._restart_sync, "recycle")
            # Every document counts towards recycling, converted or rejected.
            self._converted += 1
            try:
                pdf = await asyncio.wait_for(
                    asyncio.to_thread(self._convert_sync, docx, options), self._timeout
                )
            except DocumentRejectedError:
                raise
            except TimeoutError as error:
                await self._recover("timeout")
                raise OfficeFailureError(
                    f"LibreOffice took longer than {self._timeout:g} s and was restarted"
                ) from error
            except (UnoException, OSError, ConversionError) as error:
                # A dead bridge (DisposedException, RuntimeException) or a broken process.
                await self._recover(type(error).__name__)
                raise OfficeFailureError(
                    f"LibreOffice failed ({type(error).__name__}) and was restarted"
                ) from error
            return pdf

    async def _recover(self, reason: str) -> None:
        # After close() a conversion that outlived the grace period fails here: starting
        # a new office then would leave it running after the worker stopped.
        if self._closed:
            raise OfficeFailureError("LibreOffice was stopped during the conversion")
        await asyncio.to_thread(self._restart_sync, reason)

    async def setting(self, node: str, name: str) -> Any:
        """A configuration value as the running LibreOffice sees it (e.g. macro security)."""
        async with self._lock:
            if self._context is None:
                raise OfficeFailureError("LibreOffice is not running")
            return await asyncio.to_thread(self._read_setting, node, name)

    async def close(self, grace: float = 10.0) -> None:
        """Stop LibreOffice: let a running conversion finish (up to `grace` s), then end it."""
        self._closed = True
        acquired = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._lock.acquire(), grace)
            acquired = True
        try:
            if self._desktop is not None and self.running:
                # terminate() is a UNO call: a hung office would block it forever.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.to_thread(self._terminate_desktop), 5)
            await asyncio.to_thread(self._kill_sync, 5.0)
            shutil.rmtree(self.home, ignore_errors=True)
            log.info("office.stopped")
        finally:
            if acquired:
                self._lock.release()

    # --- blocking parts, run in a worker thread ----------------------------------------

    def _launch(self) -> subprocess.Popen[bytes]:
        self._pipe = f"resultflow-{uuid.uuid4().hex}"
        return launch(self._soffice, self.home, self.profile, self._pipe)

    def _start_sync(self) -> None:
        self._jobs.mkdir(parents=True, exist_ok=True)
        write_profile(self.profile)
        started = time.monotonic()
        deadline = started + self._start_timeout
        process = self._process = self._launch()
        launches = 1
        resolver = _resolver()
        url = f"uno:pipe,name={self._pipe};urp;StarOffice.ComponentContext"
        while True:
            code = process.poll()
            if code is not None:
                # A new profile may end the first run with 81 (restart request).
                kill_group(process)
                if launches >= MAX_LAUNCHES or time.monotonic() > deadline:
                    self._process = None
                    raise OfficeFailureError(f"LibreOffice exited with code {code} on start")
                log.info("office.relaunching", exit_code=code)
                process = self._process = self._launch()
                launches += 1
                url = f"uno:pipe,name={self._pipe};urp;StarOffice.ComponentContext"
                continue
            try:
                context = resolver.resolve(url)
            except NoConnectException:
                if time.monotonic() > deadline:
                    self._kill_sync(5.0)
                    raise OfficeFailureError(
                        f"LibreOffice did not accept a connection within {self._start_timeout:g} s"
                    ) from None
                time.sleep(0.05)
                continue
            break
        self._context = context
        self._desktop = context.ServiceManager.createInstanceWithContext(
            "com.sun.star.frame.Desktop", context
        )
        self._converted = 0
        self.starts += 1
        log.info(
            "office.started",
            pid=process.pid,
            launches=launches,
            seconds=round(time.monotonic() - started, 3),
        )

    def _restart_sync(self, reason: str) -> None:
        log.warning("office.restarting", reason=reason, converted=self._converted)
        LIBREOFFICE_RESTARTS.labels(reason).inc()
        self._kill_sync(5.0)
        self._start_sync()

    def _convert_sync(self, docx: bytes, options: ExportOptions) -> bytes:
        desktop = self._desktop
        if desktop is None:
            raise OfficeFailureError("LibreOffice is not running")
        job = uuid.uuid4().hex
        source = self._jobs / f"{job}.docx"
        target = self._jobs / f"{job}.pdf"
        source.write_bytes(docx)
        try:
            load = (
                property_value("Hidden", True),
                property_value("ReadOnly", True),
                property_value("MacroExecutionMode", NEVER_EXECUTE),
                property_value("UpdateDocMode", NO_UPDATE),
                # Force the Word filter: no type sniffing into other formats.
                property_value("FilterName", DOCX_FILTER),
            )
            try:
                document = desktop.loadComponentFromURL(source.as_uri(), "_blank", 0, load)
            except (IllegalArgumentException, IOException) as error:
                raise DocumentRejectedError(
                    f"LibreOffice cannot open the .docx ({type(error).__name__})"
                ) from error
            if document is None:
                raise DocumentRejectedError("LibreOffice cannot open the .docx")
            try:
                properties = document.getDocumentProperties()
                properties.Title = options.title
                properties.Subject = options.subject
                properties.Author = options.author
                language, _, country = options.language.partition("-")
                locale = uno.createUnoStruct("com.sun.star.lang.Locale")
                locale.Language, locale.Country = language, country
                properties.Language = locale
                # The PDF's /Lang (what screen readers use) is the document's default language.
                document.createInstance("com.sun.star.text.Defaults").CharLocale = locale
                document.storeToURL(target.as_uri(), export_arguments(options))
            finally:
                try:
                    document.close(True)
                except UnoException:
                    document.dispose()
            pdf = target.read_bytes() if target.exists() else b""
        finally:
            source.unlink(missing_ok=True)
            target.unlink(missing_ok=True)
        if not looks_like_pdf(pdf):
            raise DocumentRejectedError("LibreOffice produced no PDF for the .docx")
        return pdf

    def _terminate_desktop(self) -> None:
        with contextlib.suppress(Exception):
            self._desktop.terminate()
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(5)

    def _kill_sync(self, wait: float) -> None:
        process, self._process = self._process, None
        self._desktop = None
        self._context = None
        if process is not None:
            kill_group(process, wait)
        remove_pipes(self.profile.as_uri(), self._pipe)

    def _read_setting(self, node: str, name: str) -> Any:
        provider = self._context.ServiceManager.createInstanceWithContext(
            "com.sun.star.configuration.ConfigurationProvider", self._context
        )
        access = provider.createInstanceWithArguments(
            "com.sun.star.configuration.ConfigurationAccess", (property_value("nodepath", node),)
        )
        return access.getPropertyValue(name)
