"""Shared unit-test fixtures."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _required_tool(name: str, package: str) -> str:
    """A command-line tool the tests need: a skip without it, a failure under CI=true (CI must
    not pass by skipping: `make setup` installs it)."""
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI", "").lower() in {"true", "1", "yes"}:
            pytest.fail(f"{name} is not on PATH under CI=true: install {package} (make setup)")
        pytest.skip(f"{name} is not on PATH; install {package} (make setup) to run this test")
    return found


@pytest.fixture(scope="session")
def promtool() -> str:
    return _required_tool("promtool", "Prometheus")


@pytest.fixture(scope="session")
def amtool() -> str:
    return _required_tool("amtool", "Alertmanager")


def run_in_root(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a command from the repository root, capturing its output."""
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
