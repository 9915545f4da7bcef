"""The benchmark's input files, generated once and cached.

In: sizes and a seed. Out: JSON Lines files under ``~/.cache/cxpulse/bench/data`` (beside the
Kafka jars' cache), written to a temporary name and renamed, so an interrupted run never
leaves a file that looks complete.

- :func:`events_file`: the first ``events`` messages of the traffic generator in rate mode
  (``pipeline.generator``: conversations with bots and agents, commerce, surveys, churn, about
  0.2% bad messages and 0.5% duplicates) over ``customers`` customers, ``event_rate``
  messages per second of event time, from a fixed start: the realistic mix of a live system.
- :func:`population_file`: one journey per customer (a conversation, an order or a survey, in
  the generator's proportions, with whatever follows from it: replies, resolution, reopens,
  surveys, deliveries, returns), journeys started evenly over a day: a state of
  ``customers`` distinct customers for the memory and recovery measures.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import orjson

from pipeline.broker import default_cache_dir
from pipeline.generator import GeneratorConfig, TrafficGenerator, to_jsonl_line
from pipeline.generator_commerce import order_journey
from pipeline.generator_service import conversation_journey, survey_journey
from pipeline.generator_world import World

Log = Callable[[str], None]

# A fixed start keeps the files reproducible; it lies far enough in the past that the
# population's last refunds (weeks after their orders) are not rejected as in the future.
START: Final = datetime(2026, 10, 1, 0, 0, tzinfo=UTC)
# The generator's weights of the journeys a free slot starts (pipeline.generator).
_JOURNEY_WEIGHTS: Final = (("conversation", 0.50), ("order", 0.30), ("survey", 0.04))
_POPULATION_SPREAD_S: Final = 86400.0
_PROGRESS_EVERY: Final = 200_000


@dataclass(frozen=True, slots=True)
class Dataset:
    path: Path
    lines: int
    customers: int  # distinct customer ids in the file (valid or not)


def bench_cache_dir() -> Path:
    """``~/.cache/cxpulse/bench`` (or under ``$XDG_CACHE_HOME``)."""
    return default_cache_dir().parent / "bench"


def events_file(
    events: int, customers: int, seed: int, event_rate: float, log: Log, cache: Path | None = None
) -> Dataset:
    """The cached generator traffic file, generated on first use."""
    name = f"events-n{events}-c{customers}-s{seed}-r{event_rate:g}.jsonl"
    config = GeneratorConfig(customers=customers, rate=event_rate, seed=seed, start=START)
    lines = (to_jsonl_line(m) for m in itertools.islice(TrafficGenerator(config), events))
    return _cached(cache or bench_cache_dir(), name, lines, log, "events")


def population_file(customers: int, seed: int, log: Log, cache: Path | None = None) -> Dataset:
    """The cached population file: one journey per customer, ``customers`` customers."""
    name = f"population-c{customers}-s{seed}.jsonl"
    return _cached(
        cache or bench_cache_dir(), name, _population(customers, seed), log, "population events"
    )


def _population(customers: int, seed: int) -> Iterator[bytes]:
    start_s = START.timestamp()
    world = World(seed=seed, customers=customers, start_s=start_s, incidents=())
    kinds = [kind for kind, _ in _JOURNEY_WEIGHTS]
    weights = [weight for _, weight in _JOURNEY_WEIGHTS]
    step = _POPULATION_SPREAD_S / customers
    for number, customer in enumerate(world.customers):
        at = start_s + number * step
        kind = world.pick(kinds, weights)
        if kind == "conversation":
            world.later(at, conversation_journey, world, customer, at)
        elif kind == "order":
            world.later(at, order_journey, world, customer, at)
        else:
            channel = world.pick((customer.main_channel, "shop"), (1.0, 1.0))
            quality = world.uniform(0.4, 0.95)
            world.later(at, survey_journey, world, customer, at, channel, quality)
    while world.next_at() is not None:
        _, event = world.pop()
        yield orjson.dumps(event) + b"\n"


def _cached(cache: Path, name: str, lines: Iterator[bytes], log: Log, what: str) -> Dataset:
    path = cache / "data" / name
    meta = path.with_suffix(".meta.json")
    if path.is_file() and meta.is_file():
        info = orjson.loads(meta.read_bytes())
        log(f"using cached {path} ({info['lines']:,} lines, {info['customers']:,} customers)")
        return Dataset(path, int(info["lines"]), int(info["customers"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{name}.{os.getpid()}.tmp")
    log(f"generating {path} (once; later runs reuse it)")
    count = 0
    customers: set[bytes] = set()
    try:
        with partial.open("wb") as sink:
            for line in lines:
                sink.write(line)
                count += 1
                customers.add(_customer(line))
                if count % _PROGRESS_EVERY == 0:
                    log(f"  {count:,} {what} written")
        partial.rename(path)
    finally:
        partial.unlink(missing_ok=True)
    customers.discard(b"")
    meta.write_bytes(orjson.dumps({"lines": count, "customers": len(customers)}))
    log(f"wrote {count:,} lines, {len(customers):,} customers")
    return Dataset(path, count, len(customers))


def head(dataset: Dataset, lines: int, into: Path) -> Dataset:
    """The first `lines` lines of a dataset as a file of their own (and their customers)."""
    customers: set[bytes] = set()
    count = 0
    with dataset.path.open("rb") as source, into.open("wb") as sink:
        for line in itertools.islice(source, lines):
            sink.write(line)
            customers.add(_customer(line))
            count += 1
    customers.discard(b"")
    return Dataset(into, count, len(customers))


def tail(dataset: Dataset, skip: int, into: Path) -> Dataset:
    """The lines after the first `skip` as a file of their own (customers: the whole file's)."""
    count = 0
    with dataset.path.open("rb") as source, into.open("wb") as sink:
        for line in itertools.islice(source, skip, None):
            sink.write(line)
            count += 1
    return Dataset(into, count, dataset.customers)


def last_event_time(dataset: Dataset) -> datetime | None:
    """The `occurred_at` of the file's last line that has one (the generator writes in
    event-time order), so traffic sent after it can continue from there."""
    with dataset.path.open("rb") as source:
        source.seek(max(dataset.path.stat().st_size - 65536, 0))
        lines = source.read().splitlines()
    for line in reversed(lines):
        try:
            value = orjson.loads(line)
            return datetime.fromisoformat(value["occurred_at"])
        except (orjson.JSONDecodeError, TypeError, KeyError, ValueError):
            continue
    return None


def _customer(line: bytes) -> bytes:
    # A cheap scan instead of a JSON parse: ids never contain quotes (generator-made).
    start = line.find(b'"customer_id":"')
    if start < 0:
        return b""
    start += len(b'"customer_id":"')
    return line[start : line.find(b'"', start)]
