"""Shared unit-test fixtures."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _under_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"true", "1", "yes"}


def _required_tool(name: str, package: str) -> str:
    """A command-line tool the tests need, on PATH or where scripts/setup.sh builds tools
    (<cache>/cxpulse/bin): a skip without it, a failure under CI=true (CI must not pass by
    skipping: `make setup` installs it)."""
    found = shutil.which(name) or shutil.which(name, path=str(cache_home() / "cxpulse" / "bin"))
    if found is None:
        if _under_ci():
            pytest.fail(f"{name} is not on PATH under CI=true: install {package} (make setup)")
        pytest.skip(f"{name} is not on PATH; install {package} (make setup) to run this test")
    return found


def required_cached_file(path: Path, what: str) -> Path:
    """A file scripts/setup.sh puts in the cache (not the repo): a skip without it, a failure
    under CI=true, like `_required_tool`."""
    if not path.is_file():
        if _under_ci():
            pytest.fail(f"{what} is not cached at {path} under CI=true: run scripts/setup.sh")
        pytest.skip(f"{what} is not cached at {path}; run scripts/setup.sh (make setup)")
    return path


def cache_home() -> Path:
    """Where scripts/setup.sh caches downloads: ``$XDG_CACHE_HOME`` if absolute, else ~/.cache."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"


@pytest.fixture(scope="session")
def promtool() -> str:
    return _required_tool("promtool", "Prometheus")


@pytest.fixture(scope="session")
def amtool() -> str:
    return _required_tool("amtool", "Alertmanager")


@pytest.fixture(scope="session")
def dashboard_linter() -> str:
    return _required_tool("dashboard-linter", "dashboard-linter (Go; setup builds it)")


def run_in_root(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a command from the repository root, capturing its output."""
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
