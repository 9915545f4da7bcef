"""One `cxpulse worker` process under test: start, stop, scrape, RSS, and waiting for it.

In: the environment of a namespace (`CXPULSE_*`), a log file. Out: the process, its
`/metrics` (parsed into sums per metric name, or per series without the `partition`
label, as the shipped recording rules aggregate), its resident set size from `/proc`.

"Processed" is judged from the outside, as an operator would: the per-event counters
(`cx_events_total`, `cx_events_rejected_total`, `cx_events_duplicate_total`: every input
message ends in exactly one of them, so their sum counts the messages through the whole
pipeline) and `cxpulse_worker_events_processed_total` per agent stop moving, and the
worker's consumer group has committed the end offset of every source and `cx.events`
partition. The time the work finished is the first scrape that showed the final values.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from bench.kafka_io import GroupProgress, Namespace, group_progress

Log = Callable[[str], None]
SeriesKey = tuple[str, tuple[tuple[str, str], ...]]

PER_EVENT: Final = ("cx_events_total", "cx_events_rejected_total", "cx_events_duplicate_total")
AGENT_COUNTER: Final = "cxpulse_worker_events_processed_total"
# Process-local by nature (wall clock), so never compared across runs or restarts.
PROCESS_LOCAL: Final = ("cx_event_lag_seconds",)
_PROGRESS_EVERY_S: Final = 5.0


class WorkerProcess:
    """`python -m pipeline.cli worker` with a given environment, logging to a file."""

    def __init__(self, env: dict[str, str], metrics_port: int, log_path: Path) -> None:
        self.env = env
        self.metrics_port = metrics_port
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("the worker is not running")
        return self.proc.pid

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pipeline.cli", "worker"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM (a clean stop: leave the group, commit), SIGKILL if it hangs."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.proc = None

    def scrape(self, timeout: float = 10.0) -> str | None:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return str(response.read().decode())
        except OSError:
            return None

    def rss_bytes(self) -> tuple[int, int]:
        """(current, peak) resident set size of the worker process."""
        values: dict[str, int] = {}
        with contextlib.suppress(OSError), open(f"/proc/{self.pid}/status") as status:
            for line in status:
                name, _, rest = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    values[name] = int(rest.split()[0]) * 1024
        return values.get("VmRSS", 0), values.get("VmHWM", 0)

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def wait_metrics(self, timeout: float = 180.0) -> float:
        """Wait until `/metrics` answers; returns when (monotonic)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"the worker exited early:\n{self.log_tail()}")
            if self.scrape(timeout=2.0) is not None:
                return time.monotonic()
            time.sleep(0.2)
        raise RuntimeError(f"the worker's /metrics did not answer in {timeout:.0f}s")


def sums_by_name(text: str) -> dict[str, float]:
    """Every sample's value summed per metric name (all labels folded)."""
    sums: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        name_end = line.find("{")
        if name_end < 0:
            name_end = line.find(" ")
        value = float(line.rsplit(" ", 1)[1])
        name = line[:name_end]
        sums[name] = sums.get(name, 0.0) + value
    return sums


def summed_series(text: str) -> dict[SeriesKey, float]:
    """`cx_` series summed over `partition` (max for the oldest-unanswered age), rounded to
    micro-units: what `sum without (instance, partition)` shows, for comparisons."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[SeriesKey, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.startswith("cx_") or sample.name.startswith(PROCESS_LOCAL):
                continue
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "partition"))
            key = (sample.name, labels)
            if sample.name == "cx_oldest_unanswered_age_seconds":
                out[key] = max(out.get(key, 0.0), sample.value)
            else:
                out[key] = out.get(key, 0.0) + sample.value
    return {key: round(value, 6) for key, value in out.items()}


def messages_done(sums: dict[str, float]) -> int:
    """Input messages through the whole pipeline: valid, duplicate or rejected."""
    return round(sum(sums.get(name, 0.0) for name in PER_EVENT))


def _fingerprint(sums: dict[str, float], text: str) -> tuple[float, ...]:
    agents = tuple(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(AGENT_COUNTER + "{")
    )
    return (float(messages_done(sums)), *agents)


@dataclass(slots=True)
class Processed:
    """How a worker went through its input, seen through `/metrics`."""

    messages: int
    first_at: float  # monotonic: the first scrape that showed any processed message
    done_at: float  # monotonic: the first scrape that showed the final values
    history: list[tuple[float, int]] = field(default_factory=list)
    final_text: str = ""

    @property
    def seconds(self) -> float:
        return self.done_at - self.first_at


def wait_processed(
    worker: WorkerProcess,
    bootstrap: str,
    namespace: Namespace,
    expected: int | None,
    log: Log,
    interval: float = 0.5,
    stall_timeout: float = 300.0,
    baseline: int = 0,
) -> Processed:
    """Scrape every `interval` until the worker has processed everything in its topics.

    `expected` (input messages, if known) is only reported against; the end is decided by
    the counters standing still and the group's committed offsets at the end of every
    source and `cx.events` partition. After its last event a worker may still be settling
    (timers writing state, a commit flushing those writes) with its counters still: the
    group's commits and the changelogs growing count as progress then, and are reported.
    Raises when nothing of that moves for `stall_timeout`.
    """
    topics = [*namespace.source_topics.values(), namespace.events_topic]
    history: list[tuple[float, int]] = []
    first_at: float | None = None
    final: tuple[float, ...] | None = None
    final_since = 0.0
    settling: GroupProgress | None = None
    moved_at = reported = time.monotonic()
    while True:
        if not worker.alive():
            raise RuntimeError(f"the worker exited:\n{worker.log_tail()}")
        text = worker.scrape()
        now = time.monotonic()
        if text is None:
            time.sleep(interval)
            continue
        sums = sums_by_name(text)
        done = messages_done(sums) - baseline
        history.append((now, done))
        if first_at is None and done > 0:
            first_at = now
        print_ = now - reported >= _PROGRESS_EVERY_S
        if print_:
            reported = now
        fingerprint = _fingerprint(sums, text)
        if fingerprint != final:
            final, final_since, moved_at, settling = fingerprint, now, now, None
        elif (
            first_at is not None
            and now - final_since >= 2 * interval
            and (expected is None or done >= expected)
        ):
            progress = group_progress(bootstrap, namespace.app_id, topics)
            if progress.caught_up:
                return Processed(done, first_at, final_since, history, text)
            if settling is None or progress != settling:
                moved_at = now
            if print_:
                written = 0 if settling is None else progress.changelog_end - settling.changelog_end
                rss, _ = worker.rss_bytes()
                log(
                    f"  worker: {done:,} messages processed, settling: "
                    f"{progress.uncommitted:,} not committed yet, {written:,} changelog "
                    f"records written since the last report (RSS {rss / 2**20:,.0f} MiB)"
                )
            if settling is None or print_:
                settling = progress
            print_ = False
        if print_:
            rate = done / (now - first_at) if first_at is not None and now > first_at else 0.0
            of = f" of {expected:,}" if expected is not None else ""
            log(f"  worker: {done:,}{of} messages processed ({rate:,.0f}/s)")
        if now - moved_at > stall_timeout:
            raise RuntimeError(
                f"the worker made no progress for {stall_timeout:.0f}s at {done} messages "
                f"(counters, the group's commits and the changelogs all stood still):\n"
                f"{worker.log_tail()}"
            )
        time.sleep(interval)


def wait_settled(worker: WorkerProcess, quiet_s: float, timeout: float = 300.0) -> str:
    """Wait until no `cx_` series changes for `quiet_s` (watermark timers included);
    returns the last scrape."""
    deadline = time.monotonic() + timeout
    last: dict[SeriesKey, float] | None = None
    since = time.monotonic()
    text = ""
    while time.monotonic() < deadline:
        text = worker.scrape() or ""
        series = summed_series(text) if text else None
        now = time.monotonic()
        if series is not None and series == last:
            if now - since >= quiet_s:
                return text
        else:
            last, since = series, now
        time.sleep(0.5)
    raise RuntimeError(f"the worker's metrics did not settle within {timeout:.0f}s")


def free_env(extra: dict[str, str]) -> dict[str, str]:
    """Our environment with `extra` on top (the user's other CXPULSE_* settings apply)."""
    return {**os.environ, **extra}
