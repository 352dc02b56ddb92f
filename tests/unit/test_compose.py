"""compose.yaml is a valid Compose file: checked against the Compose specification's JSON
schema (the copy shipped with check-jsonschema), as CI has no Docker to run `compose config`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECK = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CHECK, str(path)], capture_output=True, text=True, timeout=60)


def test_compose_yaml_follows_the_compose_specification() -> None:
    result = check(ROOT / "compose.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_check_refuses_a_compose_file_with_a_mistake(tmp_path: Path) -> None:
    broken = (ROOT / "compose.yaml").read_text().replace("    restart:", "    restarts:", 1)
    (tmp_path / "compose.yaml").write_text(broken)
    result = check(tmp_path / "compose.yaml")
    assert result.returncode == 1 and "restarts" in result.stdout + result.stderr
