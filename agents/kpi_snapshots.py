"""KPI snapshots: partial window aggregates per partition -> one `cx.kpi` snapshot per channel.

Timer `publish_kpi_partials` (every snapshot interval, on every worker): for each `cx.events`
partition this worker owns and each window, the partition's window aggregate (counts and
DDSketch bins, see `agents.windows`) and gauges as of the watermark its timers act on, sent to
the internal partials topic keyed `window` (so one worker sees every partition's partial of a
window). Agent `merge_kpi_partials` keeps the latest partial per window and partition (in
memory: partials are re-sent every interval, so a restart loses nothing that matters), and
timer `publish_kpi_snapshots` merges them and sends one snapshot per channel and window to
`cx.kpi`, keyed by channel, `as_of` the oldest partial's — only once every `cx.events`
partition has reported that window cut at the same end, so a snapshot is never partial.

Bad partial (not our JSON): logged and skipped; it is our own internal topic. What stops the
worker: see `agents.fatal`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
import orjson

from agents.config import bucket_seconds
from agents.fatal import stop_worker
from agents.runtime import Runtime
from agents.windows import SNAPSHOT_CHANNELS, Partial, gauges_of, snapshot, window_name

log = logging.getLogger(__name__)
STALE_AFTER_INTERVALS = 3


Reported = tuple[float, int, Partial, dict[str, int]]


def _complete_round(
    latest: dict[tuple[int, int], Reported], window_s: int, expected_partitions: int
) -> list[Reported] | None:
    """Every partition's partial of a window, if all have reported and cut the window at the
    same end (their `as_of` floored to the window's granularity): only then is the merge the
    window at one instant. Otherwise None: the next round will be complete."""
    found = {p: v for (w, p), v in latest.items() if w == window_s}
    if len(found) < expected_partitions:
        return None
    size = bucket_seconds(window_s) * 1000
    ends = {as_of // size for _, as_of, _, _ in found.values()}
    return list(found.values()) if len(ends) == 1 else None


def register(
    app: faust.App,
    runtime: Runtime,
    partials: Any,
    kpi: Any,
    interval_s: float,
    expected_partitions: int,
) -> None:
    """Declare the partial and snapshot timers and the merge agent on `app`."""
    #: (window_s, partition) -> (received wall time, as_of_ms, partial, gauges)
    latest: dict[tuple[int, int], Reported] = {}

    async def publish_kpi_partials() -> None:
        if app.rebalancing:
            return
        for partition in list(runtime.families.service.views):
            as_of = runtime.settled_watermark_ms(partition)
            if as_of is None:
                continue
            gauges = gauges_of(runtime.families.totals_by_partition().get(partition, {}))
            for window_s in runtime.config.windows_s:
                partial = runtime.families.window_partial(partition, window_s, as_of)
                value = {
                    "partition": partition,
                    "window_s": window_s,
                    "as_of_ms": as_of,
                    "gauges": gauges,
                    **partial.to_json(),
                }
                await partials.send(key=window_name(window_s).encode(), value=orjson.dumps(value))

    async def merge_kpi_partials(stream: Any) -> None:
        async for event in stream.events():
            try:
                data = orjson.loads(event.message.value)
                key = (int(data["window_s"]), int(data["partition"]))
                latest[key] = (
                    time.monotonic(),
                    int(data["as_of_ms"]),
                    Partial.from_json(data),
                    dict(data["gauges"]),
                )
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                log.warning("skipping a malformed KPI partial: %r", exc)
            except Exception as exc:
                stop_worker("merge_kpi_partials failed", exc)

    async def publish_kpi_snapshots() -> None:
        now = time.monotonic()
        for key in [
            k for k, v in latest.items() if now - v[0] > STALE_AFTER_INTERVALS * interval_s
        ]:
            del latest[key]
        if app.rebalancing:
            return
        for window_s in runtime.config.windows_s:
            found = _complete_round(latest, window_s, expected_partitions)
            if found is None:
                continue  # not every partition has reported this window end yet
            merged = Partial()
            gauges: dict[str, int] = {}
            for _, _, partial, partition_gauges in found:
                merged.merge(partial)
                for name, value in partition_gauges.items():
                    gauges[name] = gauges.get(name, 0) + value
            as_of = min(as_of for _, as_of, _, _ in found)
            for channel in SNAPSHOT_CHANNELS:
                document = snapshot(
                    channel, window_s, as_of, merged.for_channel(channel), gauges, len(found)
                )
                await kpi.send(key=channel.encode(), value=orjson.dumps(document))

    async def forget_partials(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        latest.clear()  # whoever owns the partials partitions now gets them re-sent at once

    app.on_partitions_revoked.connect(forget_partials)
    app.timer(interval_s, name="publish_kpi_partials")(publish_kpi_partials)
    app.timer(interval_s, name="publish_kpi_snapshots")(publish_kpi_snapshots)
    app.agent(partials, name="merge_kpi_partials", concurrency=1)(merge_kpi_partials)
