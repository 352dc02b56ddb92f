"""Process hygiene for the warm LibreOffice of each convert worker: its own profile, with
macros and untrusted links off before it ever starts; killing its whole process group; the
pipes a killed office leaves behind; and the offices of workers that died without stopping
theirs. Nothing here speaks UNO (that is `adapters`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

import structlog

log = structlog.get_logger()

# Written before the first start so no document can ever run a macro or follow a link to
# somewhere untrusted (Debian ships with both allowed); recovery data would only be
# written for documents we never want reopened.
PROFILE_SETTINGS = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry"
 xmlns:xs="http://www.w3.org/2001/XMLSchema"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Common/Security/Scripting">\
<prop oor:name="MacroSecurityLevel" oor:op="fuse"><value>3</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting">\
<prop oor:name="DisableMacrosExecution" oor:op="fuse"><value>true</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting">\
<prop oor:name="BlockUntrustedRefererLinks" oor:op="fuse"><value>true</value></prop></item>
<item oor:path="/org.openoffice.Office.Recovery/AutoSave">\
<prop oor:name="Enabled" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Office.Recovery/RecoveryInfo">\
<prop oor:name="Enabled" oor:op="fuse"><value>false</value></prop></item>
</oor:items>
"""


def write_profile(profile: Path) -> None:
    """Give a fresh profile the security settings before LibreOffice ever reads it."""
    user = profile / "user"
    user.mkdir(parents=True, exist_ok=True)
    settings_file = user / "registrymodifications.xcu"
    if not settings_file.exists():
        settings_file.write_text(PROFILE_SETTINGS, encoding="utf-8")


def remove_pipes(profile_uri: str, pipe: str) -> None:
    """Remove the socket files a killed LibreOffice leaves in /tmp.

    One is our --accept pipe; the other is its single-instance pipe, named after the MD5
    of the profile URL in UTF-16 (each byte in hex without padding, as LibreOffice does).
    """
    digest = hashlib.md5(profile_uri.encode("utf-16-le"), usedforsecurity=False).digest()
    single_instance = "SingleOfficeIPC_" + "".join(f"{byte:x}" for byte in digest)
    for name in (pipe, single_instance):
        if name:
            Path(f"/tmp/OSL_PIPE_{os.getuid()}_{name}").unlink(missing_ok=True)  # noqa: S108


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _offices_using(profile_uri: str) -> tuple[set[int], set[str]]:
    """Process groups and --accept pipe names of the LibreOffices running on a profile."""
    groups: set[int] = set()
    pipes: set[str] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            if f"-env:UserInstallation={profile_uri}" in argv:
                groups.add(os.getpgid(int(entry.name)))
                pipes.update(
                    arg.split("name=", 1)[1].split(";", 1)[0]
                    for arg in argv
                    if arg.startswith("--accept=pipe,name=")
                )
        except (OSError, ValueError):
            continue
    return groups, pipes


def reap_orphaned_offices(work_dir: Path) -> int:
    """Kill the LibreOffices of workers that died without stopping theirs; how many were found.

    Each office runs in its own session, so a worker killed with SIGKILL leaves it running;
    its directory name carries the dead worker's pid. `work_dir` must therefore be local to
    this machine's process namespace (not a volume shared between containers).
    """
    reaped = 0
    own_group = os.getpgid(0)
    for home in Path(work_dir).glob("office-*-*"):
        try:
            owner = int(home.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if owner == os.getpid() or _alive(owner):
            continue
        profile_uri = (home / "profile").as_uri()
        groups, pipes = _offices_using(profile_uri)
        for group in groups - {own_group}:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
        for pipe in pipes or {""}:
            remove_pipes(profile_uri, pipe)
        shutil.rmtree(home, ignore_errors=True)
        reaped += 1
    if reaped:
        log.warning("office.reaped_orphans", count=reaped)
    return reaped


def kill_group(process: subprocess.Popen[bytes], wait: float = 5.0) -> None:
    """Kill LibreOffice's whole process group: SIGKILL to the parent alone would orphan
    soffice.bin (soffice -> oosplash -> soffice.bin)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(wait)


def launch(soffice: str, home: Path, profile: Path, pipe: str) -> subprocess.Popen[bytes]:
    """Start a headless LibreOffice on its own `profile`, listening for UNO on `pipe`, in its
    own process group (soffice -> oosplash -> soffice.bin die together), stderr to a log."""
    stderr = (home / "office.log").open("ab")
    try:
        return subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [
                soffice,
                f"-env:UserInstallation={profile.as_uri()}",
                f"--accept=pipe,name={pipe};urp;StarOffice.ComponentContext",
                "--headless",
                "--invisible",
                "--nocrashreport",
                "--nodefault",
                "--nolockcheck",
                "--nologo",
                "--norestore",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            cwd=home,
            start_new_session=True,
        )
    finally:
        stderr.close()
