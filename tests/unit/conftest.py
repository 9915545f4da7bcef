"""Shared unit-test fixtures."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def promtool() -> str:
    """Prometheus' promtool; a skip without it, a failure under CI=true (CI must not pass by
    skipping: `make setup` installs it)."""
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI", "").lower() in {"true", "1", "yes"}:
            pytest.fail("promtool is not on PATH under CI=true: install Prometheus (make setup)")
        pytest.skip("promtool is not on PATH; install Prometheus (make setup) to run this test")
    return found


@pytest.fixture(scope="session")
def amtool() -> str:
    """Alertmanager's amtool; a skip without it, a failure under CI=true (CI must not pass by
    skipping: `make setup` installs it)."""
    found = shutil.which("amtool")
    if found is None:
        if os.environ.get("CI", "").lower() in {"true", "1", "yes"}:
            pytest.fail("amtool is not on PATH under CI=true: install Alertmanager (make setup)")
        pytest.skip("amtool is not on PATH; install Alertmanager (make setup) to run this test")
    return found


def run_in_root(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a command from the repository root, capturing its output."""
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
