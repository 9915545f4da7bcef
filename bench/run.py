"""The CX Pulse benchmark: one worker against its limit, its peer and its own offline run.

Run: ``make bench`` or ``python -m bench.run [--events 1000000] [--customers 200000]
[--only raw,faust,peer,compute,ours,latency,memory] [--state-customers 1000000]
[--latency-rate 10000] [--latency-seconds 30] [--profile] [--out PATH]``. Progress goes to
stderr, a table and the JSON summary line to stdout; the summary to
``bench/results/latest.json``. Uses the Kafka at ``CXPULSE_BOOTSTRAP_SERVERS``, or starts a
local one (``pipeline.broker.LocalBroker``) and stops it at the end.

Steps, all in one run and on the same input (every step can be left out with ``--only``):

- data: ``--events`` messages of the generator's realistic mix over ``--customers``
  customers, written once to a cached file (``bench.dataset``), sent to fresh source topics
  as ``cxpulse replay`` sends them;
- raw: the limit, a plain aiokafka consumer reading them (``getmany``) and ``orjson.loads``
  of each, nothing else;
- faust: the framework's limit, a Faust agent that reads the same topics in batches and only
  decodes (``bench.faust_floor``, its own process);
- peer: the same ingest and per-channel FRT/backlog aggregation in Quix Streams
  (``bench/peer_quix.py``), checked against ours;
- compute: ``cxpulse compute FILE`` on the same file (wall time of the command);
- ours: one ``cxpulse worker`` until every per-event counter shows the last message and its
  group has committed every source and ``cx.events`` partition to the end (``bench.worker``);
  then, once its timers have settled, its metrics are compared with compute's;
- latency: produce-to-metric latency at ``--latency-rate`` for ``--latency-seconds``
  (``bench.latency``), on the worker of "ours" when it ran, else on a fresh one;
- memory: a fresh worker and namespace takes ``--state-customers`` customers, one journey
  each (``bench.dataset.population_file``): its RSS before and after; then recovery: it is
  stopped (SIGTERM), a new one started, and the time until its ``/metrics`` shows the same
  totals is measured (state restored from the changelogs). Both are projected linearly to
  1M customers when fewer were used.

Throughputs count input messages (bad and duplicate ones included) over the time from the
first to the last one processed, start-up excluded (a worker's start-up is in recovery).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson

from bench import latency as latency_mod
from bench import report
from bench.dataset import (
    Dataset,
    bench_cache_dir,
    events_file,
    head,
    last_event_time,
    population_file,
    tail,
)
from bench.kafka_io import Namespace, changelog_records, delete_topics, load, raw_consume
from bench.peer import run_peer
from bench.profile import Recording, hot_spots
from bench.worker import (
    WorkerProcess,
    free_env,
    messages_done,
    summed_series,
    sums_by_name,
    wait_processed,
    wait_settled,
)
from pipeline.broker import LocalBroker, broker_answers, free_port

STEPS: Final = ("raw", "faust", "peer", "compute", "ours", "latency", "memory")
RESULTS: Final = Path(__file__).resolve().parent / "results"
DEFAULT_OUT: Final = RESULTS / "latest.json"
IDLE_TIMEOUT_S: Final = 3  # workers let idle partitions go quickly, so timers settle soon
RECOVERY_TIMEOUT_S: Final = 900.0
FAUST_FLOOR_TIMEOUT_S: Final = 3600.0


class Bench:
    """One benchmark run: its options, log, broker, work folder and the summary it fills."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.steps: set[str] = set(args.only)
        self.started = time.monotonic()
        self.run_id = uuid.uuid4().hex[:8]
        self.work = Path(args.work_dir or tempfile.mkdtemp(prefix="run-", dir=_runs_dir()))
        self.work.mkdir(parents=True, exist_ok=True)
        self.bootstrap = ""
        self.workers: list[WorkerProcess] = []
        self.peer_channels: dict[str, dict[str, Any]] | None = None
        self.summary: dict[str, Any] = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            "run_id": self.run_id,
            "steps": sorted(self.steps, key=STEPS.index),
            "events": None,  # set by the data step
            "customers": args.customers,
            "seed": args.seed,
            "event_rate": args.event_rate,
            "partitions": args.partitions,
            "machine": report.machine(),
            "events_per_s": None,
            "raw_events_per_s": None,
            "peer_events_per_s": None,
            "compute_events_per_s": None,
            "p50_latency_s": None,
            "p99_latency_s": None,
            "rss_bytes": None,
            "recovery_s": None,
        }

    def log(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[bench {elapsed:7.1f}s] {message}", file=sys.stderr, flush=True)

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        with self._broker():
            try:
                self._steps()
            finally:
                for worker in self.workers:
                    worker.stop()
                if not self.args.keep_topics:
                    with contextlib.suppress(Exception):
                        deleted = delete_topics(self.bootstrap, f"b{self.run_id}-")
                        self.log(f"deleted this run's {len(deleted)} topics")
        return report.finish(self.summary)

    def _steps(self) -> None:
        data: Dataset | None = None
        if self.steps & {"raw", "faust", "peer", "compute", "ours"}:
            data = events_file(
                self.args.events,
                self.args.customers,
                self.args.seed,
                self.args.event_rate,
                self.log,
            )
            self.summary["events"] = data.lines
            self.summary["customers_in_events"] = data.customers
        main = Namespace(f"b{self.run_id}-m")
        if data is not None and self.steps & {"raw", "faust", "peer", "ours"}:
            self._create_topics(main)
            self.log(f"loading {data.lines:,} messages into {main.prefix}.raw.*")
            loaded = load(data.path, self.bootstrap, main.source_topics, self.log)
            self.log(f"loaded in {loaded.seconds:.1f}s ({loaded.messages / loaded.seconds:,.0f}/s)")
        expected: dict[Any, float] | None = None
        if data is not None and "compute" in self.steps:
            expected = self._compute(data)
        if data is not None and "raw" in self.steps:
            self._raw(data, main)
        if data is not None and "faust" in self.steps:
            self._faust(data, main)
        if data is not None and "peer" in self.steps:
            self._peer(main)
        worker: WorkerProcess | None = None
        if data is not None and "ours" in self.steps:
            worker = self._ours(data, main, expected)
        if "latency" in self.steps:
            if worker is not None and data is not None:
                self._latency(worker, main, last_event_time(data))
            else:
                self._latency(None, None, None)
        if worker is not None:
            worker.stop()
        if "memory" in self.steps:
            self._memory()

    @contextlib.contextmanager
    def _broker(self) -> Iterator[None]:
        given = os.environ.get("CXPULSE_BOOTSTRAP_SERVERS")
        if given:
            if not broker_answers(given.split(",")[0]):
                raise SystemExit(f"no Kafka answers at CXPULSE_BOOTSTRAP_SERVERS={given}")
            self.bootstrap = given
            self.summary["broker"] = "given"
            self.log(f"using the Kafka at {given}")
            yield
            return
        broker = LocalBroker(port=free_port(), log=self.log, heap="1g")
        self.log("CXPULSE_BOOTSTRAP_SERVERS is not set: starting a local Kafka")
        broker.start()
        self.bootstrap = broker.bootstrap
        self.summary["broker"] = f"local Kafka {broker.version}"
        try:
            yield
        finally:
            broker.stop()

    def _env(self, namespace: Namespace, metrics_port: int | None = None) -> dict[str, str]:
        extra = {
            **namespace.worker_env(),
            "CXPULSE_BOOTSTRAP_SERVERS": self.bootstrap,
            "CXPULSE_PARTITIONS": str(self.args.partitions),
            "CXPULSE_IDLE_TIMEOUT_S": str(IDLE_TIMEOUT_S),
            "CXPULSE_METRICS_HOST": "127.0.0.1",
        }
        if metrics_port is not None:
            extra["CXPULSE_METRICS_PORT"] = str(metrics_port)
        return free_env(extra)

    def _create_topics(self, namespace: Namespace) -> None:
        subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "topics", "create"],
            env=self._env(namespace),
            check=True,
            capture_output=True,
        )

    def _start_worker(
        self, namespace: Namespace, name: str, data_dir: str | None = None
    ) -> WorkerProcess:
        """A worker with its own data dir, or the one named `data_dir` (a restart)."""
        port = free_port()
        env = self._env(namespace, port)
        env["CXPULSE_DATA_DIR"] = str(self.work / f"{data_dir or name}-data")
        worker = WorkerProcess(env, port, self.work / f"{name}.log")
        worker.start()
        self.workers.append(worker)
        self.log(f"started {name} (pid {worker.pid}, log {worker.log_path})")
        return worker

    # -- steps -------------------------------------------------------------------------------

    def _compute(self, data: Dataset) -> dict[Any, float]:
        self.log(f"compute: cxpulse compute on {data.lines:,} lines")
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "compute", str(data.path)],
            capture_output=True,
            check=True,
        )
        seconds = time.monotonic() - started
        rate = data.lines / seconds
        self.summary["compute_events_per_s"] = rate
        self.summary["compute_seconds"] = seconds
        self.log(f"compute: {seconds:.1f}s, {rate:,.0f} events/s (process start included)")
        return dict(summed_series(done.stdout.decode()))

    def _raw(self, data: Dataset, main: Namespace) -> None:
        self.log("raw: aiokafka getmany + orjson.loads of every message")
        result = raw_consume(
            self.bootstrap, list(main.source_topics.values()), data.lines, self.log
        )
        self.summary["raw_events_per_s"] = result.events_per_s
        self.summary["raw_seconds"] = result.seconds
        self.log(f"raw: {result.messages:,} in {result.seconds:.2f}s, "
                 f"{result.events_per_s:,.0f} events/s")  # fmt: skip

    def _faust(self, data: Dataset, main: Namespace) -> None:
        self.log("faust: a Faust agent reading the same topics in batches, decoding only")
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.faust_floor",
                "--bootstrap",
                self.bootstrap,
                "--topics",
                ",".join(main.source_topics.values()),
                "--expected",
                str(data.lines),
                "--app-id",
                f"{main.prefix}-f",
            ],
            stdout=subprocess.PIPE,
            check=True,
            timeout=FAUST_FLOOR_TIMEOUT_S,
        )
        # Faust's terminal spinner may write escape codes to stdout too: take the result line
        lines = [ln for ln in done.stdout.decode().splitlines() if ln.startswith('{"messages"')]
        if not lines:
            raise RuntimeError(f"bench.faust_floor printed no result: {done.stdout[-500:]!r}")
        result = orjson.loads(lines[-1])
        rate = result["messages"] / result["seconds"]
        self.summary["faust_events_per_s"] = rate
        self.summary["faust_seconds"] = result["seconds"]
        self.log(f"faust: {result['messages']:,} in {result['seconds']:.1f}s, "
                 f"{rate:,.0f} events/s")  # fmt: skip

    def _peer(self, main: Namespace) -> None:
        self.log("peer: Quix Streams, same ingest and per-channel FRT/backlog")
        result = run_peer(
            self.bootstrap, main.source_topics, f"{main.prefix}-q", self.work, self.log
        )
        self.summary["peer_events_per_s"] = result.events_per_s
        self.summary["peer_seconds"] = result.seconds
        self.summary["peer_version"] = result.version
        self.summary["peer_rejected"] = result.rejected
        self.peer_channels = result.per_channel
        self.log(f"peer: {result.messages:,} in {result.seconds:.1f}s, "
                 f"{result.events_per_s:,.0f} events/s")  # fmt: skip

    def _ours(
        self, data: Dataset, main: Namespace, expected: dict[Any, float] | None
    ) -> WorkerProcess:
        self.log("ours: one cxpulse worker, end to end")
        worker = self._start_worker(main, "worker-main")
        recording = self._profile(worker)
        try:
            processed = wait_processed(
                worker,
                self.bootstrap,
                main,
                data.lines,
                self.log,
                interval=self.args.scrape_interval * 2,
            )
        finally:
            if recording is not None:
                recording.stop()
        self.summary["events_per_s"] = processed.messages / processed.seconds
        self.summary["ours_seconds"] = processed.seconds
        self.summary["ours_startup_s"] = processed.first_at - worker.started_at
        rss, _ = worker.rss_bytes()
        self.summary["rss_main_bytes"] = rss
        self.log(f"ours: {processed.messages:,} in {processed.seconds:.1f}s, "
                 f"{processed.messages / processed.seconds:,.0f} events/s "
                 f"(start-up {self.summary['ours_startup_s']:.1f}s before the first one); "
                 f"RSS {rss / 2**20:,.0f} MiB")  # fmt: skip
        if recording is not None:
            self._report_profile(recording)
        settled = wait_settled(worker, quiet_s=IDLE_TIMEOUT_S + 2)
        live = summed_series(settled)
        self._check_peer(live)
        if expected is not None:
            self._check_exact(live, expected)
        return worker

    def _check_exact(self, live: dict[Any, float], expected: dict[Any, float]) -> None:
        # late counts depend on how live reads interleave topics (see the README)
        def keep(series: dict[Any, float]) -> dict[Any, float]:
            return {k: v for k, v in series.items() if k[0] != "cx_events_late_total"}

        live, expected = keep(live), keep(expected)
        keys = expected.keys() | live.keys()
        differing = sorted(k for k in keys if live.get(k) != expected.get(k))
        self.summary["ours_equals_compute"] = not differing
        if differing:
            self.log(f"ours: {len(differing)} series differ from compute, e.g. "
                     f"{[(k, live.get(k), expected.get(k)) for k in differing[:3]]}")  # fmt: skip
        else:
            self.log(f"ours: all {len(expected)} series equal cxpulse compute's")

    def _check_peer(self, live: dict[Any, float]) -> None:
        """Did the peer do the same work? Valid events and backlog per channel must be equal.
        FRT counts are reported only: the peer observes a first response when the reply
        arrives, ours may wait for the watermark (so a short input can show fewer)."""
        channels = self.peer_channels
        if channels is None:
            return
        ours_events: dict[str, float] = {}
        for (name, labels), value in live.items():
            if name == "cx_events_total":
                channel = dict(labels)["channel"]
                ours_events[channel] = ours_events.get(channel, 0.0) + value
        agree = True
        ours_frt = peer_frt = 0.0
        for channel, totals in channels.items():
            labels = (("channel", channel),)
            agree &= live.get(("cx_backlog_conversations", labels), 0.0) == totals["backlog"]
            agree &= ours_events.get(channel, 0.0) == sum(totals["events"].values())
            ours_frt += live.get(("cx_first_response_seconds_count", labels), 0.0)
            peer_frt += totals["frt_count"]
        self.summary.update(peer_agrees=agree, peer_frt_count=peer_frt, ours_frt_count=ours_frt)
        verdict = "equal" if agree else "DIFFER from"
        self.log(f"peer: valid events and backlog per channel {verdict} ours; first responses "
                 f"observed: peer {peer_frt:,.0f}, ours {ours_frt:,.0f}")  # fmt: skip

    def _profile(self, worker: WorkerProcess) -> Recording | None:
        if not self.args.profile:
            return None
        svg, collapsed = RESULTS / "profile.svg", RESULTS / "profile-collapsed.txt"
        self.log(f"profiling the worker with py-spy into {svg}")
        return Recording(worker.pid, svg, collapsed)

    def _report_profile(self, recording: Recording) -> None:
        spots = hot_spots(recording.collapsed, top=20)
        self.summary["profile_top"] = [
            {"function": s.function, "self": s.self_share, "total": s.total_share} for s in spots
        ]
        self.log("profile, by own time (share of busy samples; own / inclusive):")
        for spot in spots:
            self.log(f"  {spot.self_share:6.1%} {spot.total_share:6.1%}  {spot.function}")

    def _latency(
        self,
        worker: WorkerProcess | None,
        namespace: Namespace | None,
        start: datetime | None,
    ) -> None:
        """On the worker of "ours" (its traffic continuing that input's event time), or on a
        fresh worker and namespace (event time from now)."""
        args = self.args
        if worker is None or namespace is None:
            namespace = Namespace(f"b{self.run_id}-l")
            self._create_topics(namespace)
            worker = self._start_worker(namespace, "worker-latency")
            worker.wait_metrics()
            self._warm_up(worker, namespace)
        baseline = messages_done(sums_by_name(worker.scrape() or ""))
        self.log(f"latency: {args.latency_rate:,.0f} events/s for {args.latency_seconds:g}s, "
                 f"scraping every {args.scrape_interval:g}s")  # fmt: skip
        result = latency_mod.measure(
            self.bootstrap,
            namespace.source_topics,
            worker.metrics_port,
            baseline,
            args.latency_rate,
            args.latency_seconds,
            args.customers,
            args.seed + 100,
            args.scrape_interval,
            self.log,
            start,
        )
        self.summary.update(
            p50_latency_s=result.p50_s,
            p99_latency_s=result.p99_s,
            max_latency_s=result.max_s,
            latency_rate=result.rate,
            latency_achieved_rate=result.achieved_rate,
            latency_messages=result.messages,
            latency_resolution_s=result.resolution_s,
            latency_drained=result.drained,
        )
        self.log(f"latency: p50 {result.p50_s:.3f}s, p99 {result.p99_s:.3f}s, max "
                 f"{result.max_s:.3f}s (resolution {result.resolution_s:.3f}s; sent at "
                 f"{result.achieved_rate:,.0f}/s)")  # fmt: skip

    def _warm_up(self, worker: WorkerProcess, namespace: Namespace) -> None:
        """A fresh worker first joins its group: send a little and wait for it to show, so
        the latency run does not time the start-up."""
        path = self.work / "warm-up.jsonl"
        messages = latency_mod.generated(namespace.source_topics, 100.0, 200, 99, 100)
        path.write_bytes(b"".join(value + b"\n" for _, _, value in messages))
        load(path, self.bootstrap, namespace.source_topics, self.log)
        wait_processed(worker, self.bootstrap, namespace, 200, self.log)

    def _memory(self) -> None:
        args = self.args
        population = population_file(args.state_customers, args.seed, self.log)
        namespace = Namespace(f"b{self.run_id}-s")
        self._create_topics(namespace)
        self.log(f"memory: a fresh worker takes {population.customers:,} customers "
                 f"({population.lines:,} events)")  # fmt: skip
        worker = self._start_worker(namespace, "worker-state")
        worker.wait_metrics()
        time.sleep(3)
        empty_rss, _ = worker.rss_bytes()
        # Two points, so start-up allocations are not taken for per-customer state: the
        # first tenth of the events (RSS and its customers), then all of them.
        first = head(population, max(population.lines // 10, 1), self.work / "state-head.jsonl")
        rest = tail(population, first.lines, self.work / "state-tail.jsonl")
        load(first.path, self.bootstrap, namespace.source_topics, self.log)
        wait_processed(worker, self.bootstrap, namespace, first.lines, self.log)
        wait_settled(worker, quiet_s=IDLE_TIMEOUT_S + 2)
        first_rss, _ = worker.rss_bytes()
        load(rest.path, self.bootstrap, namespace.source_topics, self.log)
        wait_processed(worker, self.bootstrap, namespace, population.lines, self.log)
        text = wait_settled(worker, quiet_s=IDLE_TIMEOUT_S + 2)
        rss, peak = worker.rss_bytes()
        before = summed_series(text)
        self.summary.update(
            state_customers=population.customers,
            state_events=population.lines,
            rss_empty_bytes=empty_rss,
            rss_first_customers=first.customers,
            rss_first_bytes=first_rss,
            rss_bytes=rss,
            rss_peak_bytes=peak,
        )
        self.log(f"memory: RSS {first_rss / 2**20:,.0f} MiB with {first.customers:,} customers, "
                 f"{rss / 2**20:,.0f} MiB with {population.customers:,} "
                 f"(peak {peak / 2**20:,.0f} MiB)")  # fmt: skip
        worker.stop()
        records = changelog_records(self.bootstrap, namespace.app_id)
        self.summary["changelog_records"] = records
        self.log(f"recovery: worker stopped (SIGTERM); {records:,} records in its changelogs; "
                 "restarting it on its data dir")  # fmt: skip
        restarted = self._start_worker(namespace, "worker-state-restarted", "worker-state")
        recovery_s = self._wait_same(restarted, before)
        rss_after, _ = restarted.rss_bytes()
        self.summary.update(recovery_s=recovery_s, rss_after_recovery_bytes=rss_after)
        if recovery_s is not None:
            self.log(f"recovery: same /metrics totals {recovery_s:.1f}s after the restart; "
                     f"RSS {rss_after / 2**20:,.0f} MiB")  # fmt: skip
        restarted.stop()
        self.log("recovery: a worker on an empty data dir (replays the changelogs)")
        fresh = self._start_worker(namespace, "worker-state-fresh")
        fresh_s = self._wait_same(fresh, before)
        self.summary["recovery_fresh_s"] = fresh_s
        if fresh_s is not None:
            self.log(f"recovery: same /metrics totals {fresh_s:.1f}s after the start")
        fresh.stop()

    def _wait_same(self, worker: WorkerProcess, before: dict[Any, float]) -> float | None:
        """Seconds from the worker's start until its `/metrics` totals equal `before`."""
        deadline = time.monotonic() + RECOVERY_TIMEOUT_S
        reported = time.monotonic()
        last: dict[Any, float] = {}
        while time.monotonic() < deadline:
            if not worker.alive():
                raise RuntimeError(f"the recovering worker exited:\n{worker.log_tail()}")
            text = worker.scrape()
            now = time.monotonic()
            if text is not None:
                last = summed_series(text)
                if last == before:
                    return now - worker.started_at
            if now - reported >= 5.0:
                reported = now
                state = "not up"
                if text is not None:
                    state = f"shows {messages_done(sums_by_name(text)):,} messages"
                self.log(f"  recovery: {now - worker.started_at:.0f}s, /metrics {state}")
            time.sleep(0.25)
        differing = [k for k in before.keys() | last.keys() if before.get(k) != last.get(k)]
        self.log(f"recovery: not the same totals after {RECOVERY_TIMEOUT_S:.0f}s; "
                 f"{len(differing)} series differ, e.g. {differing[:3]}")  # fmt: skip
        return None


def _runs_dir() -> Path:
    path = bench_cache_dir() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _only(value: str) -> list[str]:
    steps = [step.strip() for step in value.split(",") if step.strip()]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown or not steps:
        raise argparse.ArgumentTypeError(f"use a comma list of {', '.join(STEPS)}")
    return steps


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="CX Pulse benchmark: worker vs raw consume, Quix Streams and compute; "
        "latency at a fixed rate; memory and recovery.",
    )
    parser.add_argument("--events", type=_positive_int, default=1_000_000)
    parser.add_argument("--customers", type=_positive_int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--event-rate", type=float, default=20.0, help="generator events per second of event time"
    )
    parser.add_argument("--partitions", type=_positive_int, default=6)
    parser.add_argument(
        "--only", type=_only, default=list(STEPS), help=f"comma list of {','.join(STEPS)}"
    )
    parser.add_argument("--latency-rate", type=float, default=10_000.0)
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument("--scrape-interval", type=float, default=0.25)
    parser.add_argument("--state-customers", type=_positive_int, default=1_000_000)
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the worker during 'ours' (results/)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--work-dir", type=Path, default=None, help="logs and state (temp)")
    parser.add_argument("--keep-topics", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # aiokafka warns of every retried produce while fresh topics elect their leaders
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    bench = Bench(args)
    bench.log(f"work folder {bench.work} (worker logs); run id {bench.run_id}")
    summary = bench.run()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    line = orjson.dumps(summary).decode()
    args.out.write_text(line + "\n", encoding="utf-8")
    print(report.table(summary))
    print(line)
    bench.log(f"summary written to {args.out}")
    if args.work_dir is None:
        shutil.rmtree(bench.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
