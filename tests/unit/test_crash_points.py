"""The fault tests' crash points: inert unless named, and each fires once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from services.infra.crash_points import ARMED_VARIABLE, MARKER_DIR_VARIABLE, marker

REACH = "from services.infra.crash_points import crash_point; crash_point('render.before_ack')"


def reach_the_point(markers: Path, armed: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != ARMED_VARIABLE}
    env[MARKER_DIR_VARIABLE] = str(markers)
    if armed is not None:
        env[ARMED_VARIABLE] = armed
    return subprocess.run([sys.executable, "-c", REACH], env=env, check=False).returncode


def test_a_point_nobody_named_does_nothing(tmp_path: Path) -> None:
    assert reach_the_point(tmp_path, None) == 0
    assert reach_the_point(tmp_path, "convert.before_ack,render.after_file_stored") == 0
    assert not marker("render.before_ack", tmp_path).exists()


def test_a_named_point_kills_its_process_once_and_the_restarted_one_goes_on(
    tmp_path: Path,
) -> None:
    armed = "convert.before_ack,render.before_ack"
    assert reach_the_point(tmp_path, armed) == -signal.SIGKILL
    assert marker("render.before_ack", tmp_path).exists()
    assert reach_the_point(tmp_path, armed) == 0


def test_deleting_its_marker_arms_a_point_again(tmp_path: Path) -> None:
    marker("render.before_ack", tmp_path).touch()
    assert reach_the_point(tmp_path, "render.before_ack") == 0
    marker("render.before_ack", tmp_path).unlink()
    assert reach_the_point(tmp_path, "render.before_ack") == -signal.SIGKILL
