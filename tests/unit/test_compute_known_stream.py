"""`cxpulse compute` on the hand-made stream gives exactly the hand-worked numbers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agents.config import KpiConfig
from pipeline.compute import compute_exposition
from schemas.validate import EventValidator
from tests.exposition_parse import expected_key, summed_samples
from tests.known_stream import EXPECTED, LINES, MAX_BYTES, jsonl


def _compute() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = compute_exposition(iter(LINES), KpiConfig(), EventValidator(max_bytes=MAX_BYTES))
    return summed_samples(text.decode())


@pytest.mark.parametrize(("name", "labels"), sorted(EXPECTED))
def test_known_stream_number(name: str, labels: tuple[tuple[str, str], ...]) -> None:
    samples = _compute()
    assert samples.get(expected_key(name, labels), 0.0) == pytest.approx(EXPECTED[(name, labels)])


def test_compute_command_prints_the_same_exposition(tmp_path: Path) -> None:
    path = tmp_path / "known.jsonl"
    path.write_bytes(jsonl())
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "compute", str(path)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    samples = summed_samples(result.stdout.decode())
    assert samples == _compute()


def test_compute_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "compute", str(tmp_path / "nope.jsonl")],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert b"No such file" in result.stderr
