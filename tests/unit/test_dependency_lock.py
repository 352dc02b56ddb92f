"""The lock files stay in step with pyproject.toml (`make lock` regenerates them)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", re.M)


def project() -> dict[str, list[str]]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {"runtime": meta["dependencies"], "dev": meta["optional-dependencies"]["dev"]}


def pins(lock: str) -> dict[str, Version]:
    text = (ROOT / lock).read_text()
    return {canonicalize_name(name): Version(version) for name, version in PIN.findall(text)}


def check(requirements: list[str], pinned: dict[str, Version], lock: str) -> None:
    for line in requirements:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement.name} is not in {lock}: run `make lock`"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"{lock} pins {name}=={pinned[name]}, outside {requirement.specifier}: run `make lock`"
        )


def test_every_runtime_dependency_is_pinned_in_both_locks_within_its_range() -> None:
    for lock in ("requirements.lock", "requirements-dev.lock"):
        check(project()["runtime"], pins(lock), lock)


def test_every_dev_dependency_is_pinned_in_the_dev_lock_and_not_the_runtime_one() -> None:
    check(project()["dev"], pins("requirements-dev.lock"), "requirements-dev.lock")
    runtime = pins("requirements.lock")
    for line in project()["dev"]:
        assert canonicalize_name(Requirement(line).name) not in runtime


def test_both_locks_pin_the_same_version_of_what_they_share() -> None:
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    assert {name: dev.get(name) for name in runtime} == runtime


def test_every_pin_carries_hashes() -> None:
    for lock in ("requirements.lock", "requirements-dev.lock"):
        entries = re.split(r"\n(?=[A-Za-z0-9])", (ROOT / lock).read_text())
        pinned = [entry for entry in entries if PIN.match(entry)]
        assert pinned
        assert [e.split()[0] for e in pinned if "--hash=sha256:" not in e] == []


def test_the_known_vulnerable_releases_are_excluded() -> None:
    runtime = pins("requirements.lock")
    assert runtime["jinja2"] >= Version("3.1.6")
    assert runtime["aiohttp"] >= Version("3.14.1")
