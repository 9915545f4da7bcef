"""The one `faust.App` of a worker, with its topics, agents, tables and `/metrics` exporter.

In: `Settings`. Out: a `Worker` bundle (app, runtime, registry) whose app runs the agents
`validate_events` (sources -> `cx.events`), `apply_events` (`cx.events` -> the tables of
service levels, feedback, commerce and churn risk) and `merge_kpi_partials`, with the timers
that settle service levels and rescore churn risk.
Concurrency is 1 per agent (Faust can commit offsets of unprocessed events otherwise): scale
with partitions and workers. Faust's web server is off; our own exporter serves `/metrics`.
"""

from __future__ import annotations

import logging
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from aiohttp import web
from aiokafka.errors import IllegalStateError
from faust.exceptions import ConsumerNotStarted
from faust.sensors import Sensor
from faust.types import TP
from mode import Service
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from agents import churn_risk, commerce, feedback, ingest, kpi_snapshots, service_levels
from agents.family_agent import register_events_agent
from agents.fatal import stop_worker
from agents.positions import topic_partition
from agents.runtime import Runtime
from agents.table_store import register as register_stores
from agents.table_store import store_url
from agents.watermark import Watermark
from pipeline.kafka_options import faust_credentials
from pipeline.metrics import (
    ConsumerLagCollector,
    KpiCollector,
    StreamMetrics,
    build_stream_metrics,
)
from pipeline.offset_probe import offset_probe
from pipeline.settings import Settings
from pipeline.topics import Topics, declare_topics
from pipeline.watermark_exchange import register as share_watermark

log = logging.getLogger(__name__)
PRODUCER_BUFFER_MESSAGES = 20_000
#: how often seeks back that have not arrived are looked for (`agents.positions`)
REWIND_CHECK_S = 0.5


@dataclass(frozen=True, slots=True)
class Worker:
    app: faust.App
    runtime: Runtime
    registry: CollectorRegistry
    topics: Topics
    #: serves /metrics; `faust_worker` runs it beside the app
    exporter: MetricsExporter


class _CommitSensor(Sensor):
    """Feeds commit latency into our registry (Faust's own Prometheus sensor uses ms), and
    stops the worker when a write to Kafka fails, before a commit can step over it."""

    def __init__(self, metrics: StreamMetrics) -> None:
        super().__init__()
        self.metrics = metrics

    def on_commit_initiated(self, consumer: Any) -> Any:
        return time.monotonic()

    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        self.metrics.commit_seconds.observe(time.monotonic() - state)

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        stop_worker("a write to Kafka failed", exc)


def create_app(settings: Settings, registry: CollectorRegistry | None = None) -> Worker:
    """Build the app and everything on it; nothing connects to Kafka until it runs."""
    registry = registry or CollectorRegistry(auto_describe=False)
    data_dir = settings.data_dir or Path(tempfile.mkdtemp(prefix="cxpulse-worker-"))
    register_stores()
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{server}" for server in settings.bootstrap_servers.split(",")],
        broker_credentials=faust_credentials(settings),
        store=store_url(settings.store, settings.store_memory_mib),
        datadir=str(data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger_ms=5,
        producer_max_request_size=settings.dlq_max_bytes,
        table_standby_replicas=0,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        stream_wait_empty=True,
    )
    # table writes queue here before they are produced: past this many the stream waits for
    # inline flushes ("producer buffer full", Faust #173); a batch can write thousands
    app.producer.buffer.max_messages = PRODUCER_BUFFER_MESSAGES
    stream_metrics = build_stream_metrics(registry)
    kpi = settings.kpi_config()
    runtime = Runtime(
        config=kpi,
        validator=settings.validator(),
        watermark=Watermark(kpi.allowed_lateness_ms, settings.idle_timeout_s),
        topic_kinds=settings.topic_kinds(),
        recorder=stream_metrics,
        events_topic=settings.events_topic,
    )
    topics = declare_topics(app, settings)
    ingest.register(app, runtime, topics.sources, topics.events, topics.dlq)
    families = [
        service_levels.register(app, runtime, topics.events),
        feedback.register(app, runtime, topics.events),
        commerce.register(app, runtime, topics.events),
        churn_risk.register(app, runtime, topics.events, topics.churn),
    ]
    register_events_agent(app, runtime, topics.events, topics.dlq, families)
    kpi_snapshots.register(
        app,
        runtime,
        topics.kpi_partials,
        topics.kpi,
        settings.snapshot_interval_s,
        expected_partitions=settings.partitions,
    )
    source_ends: dict[str, int] = {}
    share_watermark(app, runtime.watermark, settings, source_ends)

    def source_behind(ref: str) -> bool:
        """A source partition with messages past what ingest has read is not idle, however
        long a starved or paused consumer has not fetched from it (its end offset is listed
        about once a second, and the consumer's own high-water mark counts too)."""
        topic, _, partition = ref.rpartition(":")
        state = runtime.sources.get(ref)
        ends = [_highwater(app, topic, int(partition)), source_ends.get(ref)]
        end = max((e for e in ends if e is not None), default=None)
        return end is not None and (state.next_offset if state else 0) < end

    runtime.watermark.behind = source_behind

    async def seek_input(tp: TP, offset: int) -> None:
        # in the consumer's thread, as Faust's recovery seeks: aiokafka's seek is not thread-safe
        try:
            await app.consumer.seek_wait({tp: offset})
        except IllegalStateError:  # revoked meanwhile: its new owner starts from its position
            log.info("%s:%d was revoked before the seek to %d", tp.topic, tp.partition, offset)

    runtime.probe_offset = offset_probe(settings)
    runtime.seek_input = seek_input

    runtime.input_end = lambda ref: _highwater(app, *topic_partition(ref))

    async def input_position(tp: TP) -> int | None:
        consumer = getattr(app, "_consumer", None)
        if consumer is None:
            return None
        try:
            position: int | None = await consumer.position(tp)
        except IllegalStateError:  # revoked meanwhile
            return None
        return position

    runtime.input_position = input_position

    async def retry_rewinds() -> None:
        await runtime.retry_rewinds(rebalancing=app.rebalancing)

    app.timer(REWIND_CHECK_S, name="retry_rewinds")(retry_rewinds)

    _forget_revoked(app, runtime, settings)
    registry.register(KpiCollector(runtime))
    registry.register(ConsumerLagCollector(lambda: _consumer_lag(app)))
    app.sensors.add(_CommitSensor(stream_metrics))
    exporter = MetricsExporter(registry, settings.metrics_host, settings.metrics_port)
    return Worker(app, runtime, registry, topics, exporter)


def _highwater(app: faust.App, topic: str, partition: int) -> int | None:
    consumer = getattr(app, "_consumer", None)
    if consumer is None:
        return None
    try:
        highwater: int | None = consumer.highwater(TP(topic, partition))
    except AssertionError:  # aiokafka: no longer assigned (a revocation under way)
        return None
    return highwater


def _forget_revoked(app: faust.App, runtime: Runtime, settings: Settings) -> None:
    """On revocation, drop the partitions' views at once, so no series is exported by two
    workers and no timer writes a partition another worker now owns."""
    sources = set(settings.source_topics.values())

    async def on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        revoked: set[TP] = args[0] if args else kwargs.get("revoked", set())
        runtime.forget_partitions(
            {tp.partition for tp in revoked if tp.topic == settings.events_topic},
            {f"{tp.topic}:{tp.partition}" for tp in revoked if tp.topic in sources},
            {f"{tp.topic}:{tp.partition}" for tp in revoked},
        )

    app.on_partitions_revoked.connect(on_revoked)


def _consumer_lag(app: faust.App) -> dict[str, int]:
    consumer = getattr(app, "_consumer", None)
    if consumer is None:
        return {}
    lags: dict[str, int] = {}
    committed = getattr(consumer, "_committed_offset", {})
    try:
        assigned = consumer.assignment()
    except ConsumerNotStarted:
        return {}  # a scrape while the worker starts: no lag to tell yet
    for tp in assigned:
        highwater = consumer.highwater(tp)
        if highwater is None:
            continue
        lags[tp.topic] = lags.get(tp.topic, 0) + max(highwater - (committed.get(tp) or 0), 0)
    return lags


def faust_worker(bundle: Worker, loglevel: str, shutdown_timeout_s: float) -> faust.Worker:
    """The Faust worker that runs `bundle`: its exporter first, so `/metrics` answers while the
    app is still recovering its tables (a Faust worker starts its extra services before the
    app)."""
    return _BoundedWorker(
        bundle.app,
        bundle.exporter,
        loglevel=loglevel,
        quiet=True,
        shutdown_timeout_s=shutdown_timeout_s,
    )


class _BoundedWorker(faust.Worker):
    """Faust's worker with a deadline on its clean stop. A stop waits on the broker (the last
    commit, leaving the group, the producer's flush); with the broker gone it waits out its
    request timeouts (35 s measured) and further SIGTERMs change nothing. Past
    `shutdown_timeout_s` the process exits as after a crash (exit 1, nothing more committed),
    which the state survives exactly."""

    def __init__(self, *services: Any, shutdown_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*services, **kwargs)
        self._shutdown_timeout_s = shutdown_timeout_s
        self._deadline: threading.Timer | None = None

    def _repr_name(self) -> str:
        return "Worker"  # its logs read `[^Worker]` as Faust's do

    def _schedule_shutdown(self, sig: signal.Signals) -> None:
        # mode.Worker's one path from SIGINT and SIGTERM to its stop; a thread, as the event
        # loop may be what is stuck
        if self._deadline is None:
            self._deadline = threading.Timer(self._shutdown_timeout_s, self._give_up)
            self._deadline.daemon = True
            self._deadline.start()
        super()._schedule_shutdown(sig)

    def _give_up(self) -> None:
        stop_worker(
            "the worker's stop did not end in time (CXPULSE_SHUTDOWN_TIMEOUT_S)",
            TimeoutError(f"still stopping after {self._shutdown_timeout_s:g} s"),
        )


class MetricsExporter(Service):
    """Serves `/metrics` on the app's event loop (collectors read agent state safely). The
    worker starts it before the app, so it answers while the tables recover: stream health at
    once, a partition's KPI series as soon as its tables are recovered (none before)."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.registry = registry
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def _metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def on_start(self) -> None:
        server = web.Application()
        server.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(server, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("serving /metrics on http://%s:%d/metrics", self.host, self.port)

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
