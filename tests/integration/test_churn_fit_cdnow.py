"""`cxpulse churn fit` on the CDNOW sample reproduces Fader, Hardie & Lee (2005).

The paper fits BG/NBD to 2,357 CDNOW customers with a calibration period ending 1997-09-30 and
reports r = 0.243, alpha = 4.414, a = 0.793, b = 2.426 and LL = -9582.4. The sample ships inside
the ``lifetimes`` wheel on PyPI; ``scripts/setup.sh`` caches it (it is not vendored here). Its
rows: customer id, customer index, date YYYYMMDD, CDs bought, dollar amount.

Runs the real command in a subprocess; no Kafka needed. Skipped when the dataset is not cached,
except under CI (``CI`` set), where a missing dataset fails the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PAPER = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "log_likelihood": -9582.4}


def cdnow_sample() -> Path:
    """Where scripts/setup.sh caches the sample: ``$XDG_CACHE_HOME`` or ``~/.cache``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "cxpulse" / "datasets" / "CDNOW_sample.txt"


def cdnow_to_jsonl(text: str) -> bytes:
    """One ``order.placed`` per CDNOW row, at noon UTC of its date, in USD."""
    lines = []
    for index, row in enumerate(text.splitlines()):
        fields = row.split()
        if not fields:
            continue
        customer, _, date, _, amount = fields
        event = {
            "event_id": f"cdnow-{index}",
            "type": "order.placed",
            "occurred_at": f"{date[:4]}-{date[4:6]}-{date[6:]}T12:00:00Z",
            "customer_id": customer,
            "channel": "shop",
            "order_id": f"cdnow-order-{index}",
            "amount": float(amount),
            "currency": "USD",
        }
        lines.append(orjson.dumps(event))
    return b"\n".join(lines) + b"\n"


def _running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="module")
def cdnow_jsonl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sample = cdnow_sample()
    if not sample.is_file():
        message = f"CDNOW sample not cached at {sample}: run scripts/setup.sh (make setup)"
        if _running_in_ci():
            pytest.fail(message + " - CI must run this test")
        pytest.skip(message)
    path = tmp_path_factory.mktemp("cdnow") / "cdnow_orders.jsonl"
    path.write_bytes(cdnow_to_jsonl(sample.read_text()))
    return path


def _churn_fit(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "churn", "fit", *args],
        capture_output=True,
        timeout=120,
    )


def test_churn_fit_reproduces_the_paper_on_cdnow(cdnow_jsonl: Path) -> None:
    started = time.monotonic()
    result = _churn_fit(str(cdnow_jsonl), "--until", "1997-09-30", "--format", "json")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr.decode()
    fitted = orjson.loads(result.stdout)
    assert set(fitted) == {"r", "alpha", "a", "b", "log_likelihood", "customers"}
    assert fitted["customers"] == 2357
    for key, expected in PAPER.items():
        assert fitted[key] == pytest.approx(expected, rel=0.01), key
    assert b"2357 customers" in result.stderr
    assert elapsed < 60, f"churn fit took {elapsed:.1f} s"


def test_churn_fit_text_table(cdnow_jsonl: Path) -> None:
    result = _churn_fit(str(cdnow_jsonl), "--until", "1997-09-30")
    assert result.returncode == 0, result.stderr.decode()
    text = result.stdout.decode()
    assert "0.2426" in text and "4.4136" in text and "-9582.43" in text and "2357" in text


def test_churn_fit_bad_usage_exits_2(cdnow_jsonl: Path, tmp_path: Path) -> None:
    missing = _churn_fit(str(tmp_path / "missing.jsonl"), "--until", "1997-09-30")
    assert missing.returncode == 2
    assert b"cannot read" in missing.stderr
    bad_until = _churn_fit(str(cdnow_jsonl), "--until", "30/09/1997")
    assert bad_until.returncode == 2
    assert b"--until" in bad_until.stderr
    too_early = _churn_fit(str(cdnow_jsonl), "--until", "1996-12-31")
    assert too_early.returncode == 2
    assert b"no valid order.placed event" in too_early.stderr
