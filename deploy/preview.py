"""`python -m deploy.preview` (`make previews`): PNG previews of the mixin's dashboards, drawn
from a live run, for readers without Grafana.

In: the dashboards in `deploy/mixin/dashboards_out/*.json`, the rules and alerts next to them.
It starts a local Kafka (`pipeline.broker.LocalBroker`), the topics, one `cxpulse worker`, a
Prometheus (`deploy.local_prometheus`) scraping it every second, and replays generated traffic
with scripted incidents at a wall-clock pace ``--speedup`` times faster than its event time
(the worker runs on event time; Prometheus' windows are wall time). It prints progress while
the traffic runs (a few minutes), then runs every panel's queries as range queries over the run.
Out: `docs/<dashboard uid>.png` per dashboard (`--output-dir`), and the alerts that went pending
or firing during the run on stdout. Everything it started is stopped on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from deploy.dashboard_queries import DASHBOARDS_DIR, Query, dashboard_files, load_dashboard
from deploy.local_prometheus import LocalPrometheus, ScrapeTarget
from deploy.preview_render import render_dashboard
from pipeline.broker import LocalBroker, free_port
from schemas.errors import CXPulseError

DOCS_DIR: Final = Path(__file__).resolve().parents[1] / "docs"
#: Offsets in event time; at the default speed-up of 30 the run covers 2.5 h of event time in
#: 5 minutes, so the phone outage runs from 0:40 to 2:00 of wall time, the chat bot failure
#: from 2:20 to 3:20 and the shipping delay from 2:00 to the end.
DEFAULT_INCIDENTS: Final = (
    "outage:phone@20m+40m",
    "bot_failure:chat@1h10m+30m",
    "shipping_delay@1h+1h30m",
)
FCR_HORIZON_S: Final = 1800
_PROGRESS_EVERY_S: Final = 10.0
_SETTLE_S: Final = 15.0  # after the traffic: idle timeout (5 s) + timers + scrape + rules


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.preview",
        description="Render PNG previews of the mixin's dashboards from a live local run.",
    )
    parser.add_argument("--output-dir", type=Path, default=DOCS_DIR)
    parser.add_argument("--dashboards", type=Path, default=DASHBOARDS_DIR)
    parser.add_argument("--minutes", type=float, default=5.0, help="wall minutes of traffic")
    parser.add_argument("--speedup", type=float, default=30.0, help="event time per wall time")
    parser.add_argument("--rate", type=float, default=2.0, help="events per event-time second")
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--incident",
        action="append",
        help=f"generator incident, repeatable (default: {' '.join(DEFAULT_INCIDENTS)})",
    )
    args = parser.parse_args(argv)
    if not (args.minutes > 0 and args.speedup > 0 and args.rate > 0):
        parser.error("--minutes, --speedup and --rate must be positive")
    files = dashboard_files(args.dashboards)  # fail before starting anything
    try:
        import matplotlib  # noqa: F401 (a dev extra: fail before starting anything)
    except ImportError:
        parser.error("matplotlib is missing: pip install -e '.[dev]' (or make setup)")
    incidents = tuple(args.incident or DEFAULT_INCIDENTS)
    try:
        with tempfile.TemporaryDirectory(prefix="cxpulse-preview-") as tmp:
            _run(args, Path(tmp), files, incidents)
    except KeyboardInterrupt:
        _say("interrupted: everything the preview started is stopped")
        return 130
    except CXPulseError as exc:
        _say(f"error: {exc}")
        return 1
    return 0


def _run(
    args: argparse.Namespace, tmp: Path, files: list[Path], incidents: tuple[str, ...]
) -> None:
    span_s = int(args.minutes * 60 * args.speedup)
    with ExitStack() as stack:
        broker = LocalBroker(port=free_port(), data_dir=tmp / "kafka", log=_say)
        broker.start()
        stack.callback(broker.stop)
        metrics_port = free_port()
        env = {
            "CXPULSE_BOOTSTRAP_SERVERS": broker.bootstrap,
            "CXPULSE_METRICS_HOST": "127.0.0.1",
            "CXPULSE_METRICS_PORT": str(metrics_port),
            "CXPULSE_DATA_DIR": str(tmp / "worker"),
            "CXPULSE_IDLE_TIMEOUT_S": "5",
            # 7 days of event time would take hours here: settle first contact resolution
            # after 30 minutes so the FCR panels show rates, not zeros
            "CXPULSE_FCR_HORIZON_S": str(FCR_HORIZON_S),
        }
        _cli(env, "topics", "create")
        worker = _start(env, tmp / "worker.log", "worker")
        stack.callback(_stop, worker)
        _wait_for_metrics(worker, metrics_port, tmp / "worker.log")
        prometheus = LocalPrometheus([ScrapeTarget(f"127.0.0.1:{metrics_port}")])
        prometheus.start()
        stack.callback(prometheus.stop)
        traffic = tmp / "traffic.jsonl"
        start = datetime.fromtimestamp(time.time() - span_s, UTC).isoformat(timespec="seconds")
        _say(f"generating {span_s / 3600:.1f} h of event time at {args.rate:g} events/s ...")
        _cli(
            env, "generate", "--output", str(traffic), "--rate", str(args.rate),
            "--duration", str(span_s), "--customers", str(args.customers),
            "--seed", str(args.seed), "--start", start,
            *[arg for spec in incidents for arg in ("--incident", spec)],
        )  # fmt: skip
        total = traffic.read_bytes().count(b"\n")
        prometheus.wait_for_targets_up(timeout=120)
        began = time.time()
        replay = _start(
            env, tmp / "replay.log", "replay", str(traffic), "--rate", str(args.rate * args.speedup)
        )
        stack.callback(_stop, replay)
        _say(
            f"replaying {total} messages over {args.minutes:g} min (event time x{args.speedup:g}); "
            f"incidents {', '.join(incidents)}"
        )
        _follow(prometheus, replay, worker, began, total, args.minutes * 60)
        time.sleep(_SETTLE_S)
        end = time.time()
        subtitle = (
            f"Preview from a live run ({datetime.fromtimestamp(began, UTC):%Y-%m-%d %H:%M} UTC): "
            f"local Kafka, one worker, Prometheus with the mixin's rules; generated traffic "
            f"{args.rate:g} events/s of event time replayed {args.speedup:g}x faster "
            f"({span_s / 3600:.1f} h of event time in {args.minutes:g} min), incidents "
            f"{', '.join(incidents)}; FCR horizon {FCR_HORIZON_S // 60} min. Windows are wall "
            "time, so those longer than the run show the run so far; $channel and $instance = All."
        )
        step = max(2.0, (end - began) / 300)
        for path in files:
            dashboard = load_dashboard(path, rate_interval="1m", range_s=int(end - began))
            output = args.output_dir / f"{dashboard.uid}.png"

            def run(query: Query, instant: bool) -> list[dict[str, Any]]:
                if instant:
                    return prometheus.query(query.expr, at=end)
                return prometheus.query_range(query.expr, began - 30, end, step)

            render_dashboard(
                dashboard, run, output, time_range=(began - 30, end), subtitle=subtitle
            )
            _say(f"wrote {output}")
        _report_alerts(prometheus, began, end)


def _follow(
    prometheus: LocalPrometheus,
    replay: subprocess.Popen[bytes],
    worker: subprocess.Popen[bytes],
    began: float,
    total: int,
    planned_s: float,
) -> None:
    """Print progress until the replay has sent everything."""
    while replay.poll() is None:
        time.sleep(_PROGRESS_EVERY_S)
        if worker.poll() is not None:
            raise CXPulseError(f"the worker exited with code {worker.returncode}")
        elapsed = time.time() - began
        processed = _value(
            prometheus,
            "sum(cx_events_total) + sum(cx_events_rejected_total) + sum(cx_events_duplicate_total)",
        )
        watermark = _value(prometheus, "max(cx_watermark_timestamp_seconds)")
        alerts = sorted(
            f"{a['labels']['alertname']}{{{a['labels'].get('channel', '')}}} {a['state']}"
            for a in prometheus.alerts()
        )
        _say(
            f"[{_clock(elapsed)}/{_clock(planned_s)}] processed {processed:,.0f}/{total:,} "
            f"messages, watermark {_when(watermark)}; alerts: {', '.join(alerts) or 'none'}"
        )
    if replay.returncode != 0:
        raise CXPulseError(f"cxpulse replay exited with code {replay.returncode}")


def _report_alerts(prometheus: LocalPrometheus, began: float, end: float) -> None:
    window = f"{int(end - began) + 30}s"
    seen = prometheus.query(f"max_over_time(ALERTS[{window}])", at=end)
    rows = sorted(
        {
            f"{s['metric'].get('alertname')} {s['metric'].get('severity')} "
            f"{s['metric'].get('channel', '')} ({s['metric'].get('alertstate')})".rstrip()
            for s in seen
        }
    )
    print("alerts pending or firing during the run:")
    for row in rows or ["none"]:
        print(f"  {row}")


def _wait_for_metrics(worker: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Until the worker serves /metrics (so Prometheus never sees it down)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise CXPulseError(f"the worker exited with code {worker.returncode}: see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise CXPulseError(f"the worker did not serve /metrics within 120 s: see {log}")


def _value(prometheus: LocalPrometheus, expr: str) -> float:
    found = prometheus.query(expr)
    return float(found[0]["value"][1]) if found else 0.0


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def _when(unix: float) -> str:
    return f"{datetime.fromtimestamp(unix, UTC):%H:%M} UTC" if unix else "-"


def _cli(env: dict[str, str], *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        env=_environ(env),
        capture_output=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise CXPulseError(f"cxpulse {args[0]} failed: {result.stderr.decode()[-2000:]}")


def _start(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", *args],
            env=_environ(env),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _environ(env: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **env}


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
