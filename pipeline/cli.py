"""`cxpulse`: the one command line (contract section 6).

Every option also reads `CXPULSE_<OPTION>`; settings without a flag are read from the
environment by `Settings`. Exit codes: 0 success, 2 bad usage or configuration, 1 any other
failure. Logs go to stderr (text, or JSON with `--log-format json`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.console import Console
from rich.progress import Progress

from pipeline.broker import DEFAULT_KAFKA_VERSION, LocalBroker, broker_answers
from pipeline.settings import Settings
from schemas.errors import ConfigurationError, CXPulseError

T = TypeVar("T")
err = Console(stderr=True, soft_wrap=True)
app = typer.Typer(
    help="CX Pulse: real-time customer-experience KPIs from Kafka.", no_args_is_help=True
)
topics_app = typer.Typer(help="Manage the Kafka topics CX Pulse uses.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")

BOOTSTRAP = typer.Option(
    None,
    "--bootstrap-servers",
    envvar="CXPULSE_BOOTSTRAP_SERVERS",
    help="Kafka bootstrap servers [default: localhost:9092].",
)
METRICS_PORT = typer.Option(
    None, "--metrics-port", envvar="CXPULSE_METRICS_PORT", help="Port of /metrics [default: 9110]."
)
METRICS_HOST = typer.Option(
    None,
    "--metrics-host",
    envvar="CXPULSE_METRICS_HOST",
    help="Address /metrics binds to [default: 0.0.0.0].",
)
PARTITIONS = typer.Option(
    None, "--partitions", envvar="CXPULSE_PARTITIONS", help="Partitions per topic [default: 6]."
)
LOG_FORMAT = typer.Option(
    None, "--log-format", envvar="CXPULSE_LOG_FORMAT", help="text or json [default: text]."
)
LOG_LEVEL = typer.Option(
    None,
    "--log-level",
    envvar="CXPULSE_LOG_LEVEL",
    help="DEBUG, INFO, WARNING or ERROR [default: INFO].",
)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the flags given on the command line on top."""
    try:
        settings = Settings(**{key: value for key, value in overrides.items() if value is not None})
    except SettingsError as exc:
        raise ConfigurationError(
            f"invalid configuration: {exc}; give mappings as JSON, e.g. "
            "CXPULSE_FRT_TARGETS='{\"chat\": 60}'"
        ) from None
    except ValidationError as exc:
        problems = "; ".join(_problem(e["loc"], e["msg"]) for e in exc.errors())
        raise ConfigurationError(f"invalid configuration: {problems}") from None
    _setup_logging(settings)
    return settings


def _problem(location: tuple[int | str, ...], message: str) -> str:
    name = "_".join(str(part) for part in location).upper()
    return f"CXPULSE_{name}: {message}" if name else message


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return orjson.dumps(
            {
                "ts": record.created,
                "level": record.levelname,
                "logger": record.name,
                "msg": record.getMessage(),
            }
        ).decode()


def _setup_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)


def _run(fn: Callable[[], T]) -> T:
    """Map our errors to the contract's exit codes with a message that says what to do."""
    try:
        return fn()
    except ConfigurationError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    except CXPulseError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


@app.command()
def worker(
    bootstrap_servers: str | None = BOOTSTRAP,
    metrics_port: int | None = METRICS_PORT,
    metrics_host: str | None = METRICS_HOST,
    partitions: int | None = PARTITIONS,
    log_format: str | None = LOG_FORMAT,
    log_level: str | None = LOG_LEVEL,
) -> None:
    """Run one stream worker; start more (same group) for more throughput."""

    def go() -> None:
        settings = load_settings(
            bootstrap_servers=bootstrap_servers,
            metrics_port=metrics_port,
            metrics_host=metrics_host,
            partitions=partitions,
            log_format=log_format,
            log_level=log_level,
        )
        from pipeline.app import create_app, faust_worker
        from pipeline.kafka_options import check_credentials

        check_credentials(settings)
        bundle = create_app(settings)
        faust_worker(
            bundle, settings.log_level.lower(), settings.shutdown_timeout_s
        ).execute_from_commandline()

    _run(go)


@topics_app.command("create")
def topics_create(
    bootstrap_servers: str | None = BOOTSTRAP,
    partitions: int | None = PARTITIONS,
    replication_factor: int | None = typer.Option(
        None, envvar="CXPULSE_REPLICATION_FACTOR", help="Replication factor [default: 1]."
    ),
) -> None:
    """Create the source, output and changelog topics (existing ones are left alone)."""

    def go() -> None:
        settings = load_settings(
            bootstrap_servers=bootstrap_servers,
            partitions=partitions,
            replication_factor=replication_factor,
        )
        created = _create_topics(settings)
        err.print(f"created {len(created)} topics" + (f": {', '.join(created)}" if created else ""))

    _run(go)


def _create_topics(settings: Settings) -> list[str]:
    from pipeline.kafka_options import aiokafka_options, check_credentials
    from pipeline.topics import create_topics

    check_credentials(settings)
    try:
        return asyncio.run(create_topics(settings, aiokafka_options(settings)))
    except Exception as exc:
        if isinstance(exc, CXPulseError):
            raise
        raise CXPulseError(
            f"could not create topics on {settings.bootstrap_servers}: {exc}"
        ) from exc


@app.command()
def broker(
    port: int = typer.Option(9092, envvar="CXPULSE_BROKER_PORT", help="Kafka listener port."),
    data_dir: Path | None = typer.Option(
        None,
        envvar="CXPULSE_BROKER_DATA_DIR",
        help="Keep the broker's data here (default: a temporary folder).",
    ),
    kafka_version: str = typer.Option(
        DEFAULT_KAFKA_VERSION,
        envvar="CXPULSE_KAFKA_VERSION",
        help="Apache Kafka version from Maven Central.",
    ),
) -> None:
    """Run a local single-node Apache Kafka (KRaft) until Ctrl-C."""

    def go() -> None:
        logging.basicConfig(level="INFO")
        local = LocalBroker(port=port, data_dir=data_dir, version=kafka_version, log=err.print)
        local.start()
        err.print(
            f"[green]Kafka {kafka_version} ready on {local.bootstrap}[/green] (Ctrl-C stops it)"
        )
        try:
            _wait_for_signal()
        finally:
            local.stop()

    _run(go)


def _wait_for_signal() -> None:
    stop = False

    def handler(signum: int, frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, handler)
    try:
        while not stop:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass


@app.command()
def replay(
    file: str = typer.Argument(..., help="JSON Lines file, .gz file, or - for stdin."),
    rate: float | None = typer.Option(
        None,
        "--rate",
        envvar="CXPULSE_RATE",
        help="Messages per second (default: as fast as possible).",
    ),
    bootstrap_servers: str | None = BOOTSTRAP,
) -> None:
    """Feed JSON Lines events into the source topics by channel, in file order."""

    def go() -> None:
        from pipeline.replay import open_lines
        from pipeline.replay import replay as replay_lines

        settings = load_settings(bootstrap_servers=bootstrap_servers)
        topics = settings.source_topics
        fallback = next(iter(topics.values()))
        with Progress(console=err, transient=False) as progress:
            task = progress.add_task(f"replaying {file}", total=None)
            stats = asyncio.run(
                _with_producer(
                    settings,
                    lambda producer: replay_lines(
                        open_lines(file),
                        producer,
                        topics,
                        fallback,
                        rate=rate,
                        progress=lambda n: progress.update(task, completed=n),
                    ),
                )
            )
        err.print(f"sent {stats.sent} messages ({stats.unroutable} unroutable to {fallback})")

    _run(go)


async def _with_producer(settings: Settings, use: Callable[[Any], Any]) -> Any:
    from aiokafka import AIOKafkaProducer

    from pipeline.kafka_options import aiokafka_options

    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        linger_ms=10,
        max_batch_size=256 * 1024,
        acks="all",
        # replay must pass oversized lines on, so the workers dead-letter them as too_large
        max_request_size=4 * settings.max_message_bytes + 65536,
        **aiokafka_options(settings),
    )
    try:
        await producer.start()
    except Exception as exc:
        raise CXPulseError(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}") from exc
    try:
        return await use(producer)
    finally:
        await producer.stop()


@app.command()
def generate(
    customers: int = typer.Option(10000, envvar="CXPULSE_CUSTOMERS", help="Number of customers."),
    rate: float = typer.Option(
        50.0,
        envvar="CXPULSE_RATE",
        help="Events per second (with --per-customer: only paces sending to Kafka).",
    ),
    duration: float | None = typer.Option(
        None,
        envvar="CXPULSE_DURATION",
        help="Seconds of traffic (default: until Ctrl-C); not with --per-customer.",
    ),
    per_customer: bool = typer.Option(
        False,
        "--per-customer",
        envvar="CXPULSE_PER_CUSTOMER",
        help="Per-customer mode: each customer's purchase rhythm, contacts and experience drive "
        "the traffic and its churn (customer.churned as ground truth), over --days of event "
        "time; no event-time rate.",
    ),
    days: float | None = typer.Option(
        None,
        "--days",
        envvar="CXPULSE_DAYS",
        help="Days of event time to generate; required with --per-customer, and only there.",
    ),
    seed: int = typer.Option(
        1, envvar="CXPULSE_SEED", help="Random seed: the same seed gives the same traffic."
    ),
    incident: list[str] = typer.Option(
        [],
        envvar="CXPULSE_INCIDENT",
        help="Scripted incident, e.g. outage:chat@10m+15m (repeatable).",
    ),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Write JSON Lines here (- for stdout), as fast as possible, instead of producing "
        "to Kafka paced by --rate.",
    ),
    start: str | None = typer.Option(
        None,
        envvar="CXPULSE_START",
        help="Event time of the first event, RFC 3339 (default: now; with --per-customer: "
        "--days before now, so that the history ends now).",
    ),
    bootstrap_servers: str | None = BOOTSTRAP,
) -> None:
    """Produce realistic omnichannel traffic, with scripted incidents, to Kafka or a file."""

    def go() -> None:
        from pipeline.generator import GeneratorConfig, TrafficGenerator, parse_incident

        if per_customer:
            if days is None or not days > 0:
                raise ConfigurationError("--per-customer needs --days N (N > 0): days of traffic")
            if duration is not None:
                raise ConfigurationError(
                    "--duration is for rate mode: with --per-customer give --days"
                )
            span_s: float | None = days * 86400
            first = _parse_start(start)
            if start is None:  # the history ends now
                first = datetime.fromtimestamp(first.timestamp() - days * 86400, UTC)
        else:
            if days is not None:
                raise ConfigurationError(
                    "--days is for --per-customer: in rate mode give --duration"
                )
            span_s, first = duration, _parse_start(start)
        config = GeneratorConfig(
            start=first,
            customers=customers,
            rate=None if per_customer else rate,
            duration_s=span_s,
            seed=seed,
            incidents=tuple(parse_incident(spec) for spec in incident),
        )
        messages = iter(TrafficGenerator(config))
        if output is not None:
            _write_jsonl(messages, output)
            return
        settings = load_settings(bootstrap_servers=bootstrap_servers)
        _produce_generated(settings, messages, rate)

    _run(go)


def _parse_start(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigurationError(
            f"--start {value!r}: use RFC 3339, e.g. 2026-11-22T08:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise ConfigurationError(f"--start {value!r} needs an offset, e.g. Z or +01:00")
    return moment


def _write_jsonl(messages: Iterator[Any], output: Path) -> None:
    from pipeline.generator import to_jsonl_line

    sink = sys.stdout.buffer if str(output) == "-" else output.open("wb")
    count = 0
    try:
        for message in messages:
            sink.write(to_jsonl_line(message))
            count += 1
            if count % 100_000 == 0:
                err.print(f"wrote {count} events")
    finally:
        if sink is not sys.stdout.buffer:
            sink.close()
    err.print(f"wrote {count} events to {output}")


def _produce_generated(settings: Settings, messages: Iterator[Any], rate: float) -> None:
    from pipeline.replay import produce_generated

    topics = settings.source_topics
    started = time.monotonic()
    reported = [started]

    def progress(sent: int) -> None:
        now = time.monotonic()
        if now - reported[0] >= 5.0:
            reported[0] = now
            err.print(f"generated {sent} events ({sent / (now - started):.0f}/s)", highlight=False)

    try:
        stats = asyncio.run(
            _with_producer(
                settings, lambda p: produce_generated(messages, p, topics, rate, progress, None)
            )
        )
    except KeyboardInterrupt:
        err.print("generator stopped")
        return
    err.print(f"generated {stats.sent} events")


@app.command()
def compute(
    file: str = typer.Argument(..., help="JSON Lines file, .gz file, or - for stdin."),
    output_format: str = typer.Option(
        "prometheus",
        "--format",
        help="prometheus (the exposition) or json (the final cx.kpi snapshot per channel and "
        "window, one JSON object per line).",
    ),
) -> None:
    """Run the KPI logic on a JSON Lines file without Kafka; print what the workers would."""

    def go() -> None:
        from pipeline.compute import compute_exposition, compute_snapshots
        from pipeline.replay import open_lines

        if output_format not in ("prometheus", "json"):
            raise ConfigurationError(f"--format {output_format!r}: use prometheus or json")
        settings = load_settings()
        validator = settings.validator()
        lines = open_lines(file)
        if output_format == "json":
            for item in compute_snapshots(lines, settings.kpi_config(), validator):
                sys.stdout.buffer.write(orjson.dumps(item) + b"\n")
        else:
            sys.stdout.buffer.write(compute_exposition(lines, settings.kpi_config(), validator))

    _run(go)


@app.command()
def demo(
    bootstrap_servers: str | None = BOOTSTRAP,
    metrics_port: int | None = METRICS_PORT,
    rate: float = typer.Option(100.0, envvar="CXPULSE_RATE", help="Generated events per second."),
    customers: int = typer.Option(
        20000, envvar="CXPULSE_CUSTOMERS", help="Number of simulated customers."
    ),
    incident: list[str] = typer.Option(
        [], envvar="CXPULSE_INCIDENT", help="Scripted incident, e.g. outage:chat@10m+15m."
    ),
) -> None:
    """The main job: Kafka (local if none answers), topics, a worker and the generator."""

    def go() -> None:
        settings = load_settings(bootstrap_servers=bootstrap_servers, metrics_port=metrics_port)
        try:
            _demo(settings, rate, customers, incident)
        except KeyboardInterrupt:
            err.print("demo interrupted while starting; everything it started is stopped")

    _run(go)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


DEMO_LATENESS_S = 10


def _demo(settings: Settings, rate: float, customers: int, incidents: list[str]) -> None:
    # SIGTERM (docker stop, timeout, kill) stops everything as cleanly as Ctrl-C does
    signal.signal(signal.SIGTERM, _interrupt)
    local: LocalBroker | None = None
    children: list[subprocess.Popen[bytes]] = []
    bootstrap = settings.bootstrap_servers
    try:
        if not broker_answers(bootstrap.split(",")[0]):
            port = int(bootstrap.split(",")[0].rsplit(":", 1)[1])
            err.print(f"no Kafka answers at {bootstrap}: starting a local one on port {port}")
            local = LocalBroker(port=port, log=err.print)
            local.start()
        _create_topics(settings)
        env_args = ["--bootstrap-servers", bootstrap]
        cli = [sys.executable, "-m", "pipeline.cli"]
        # live traffic in order: a short allowed lateness shows first response times within
        # seconds of the reply (the default 5 min waits for replies arriving out of order)
        worker_env = {"CXPULSE_ALLOWED_LATENESS_S": str(DEMO_LATENESS_S), **os.environ}
        children.append(
            subprocess.Popen(
                [*cli, "worker", *env_args, "--metrics-port", str(settings.metrics_port)],
                env=worker_env,
            )
        )
        extra = [arg for spec in incidents for arg in ("--incident", spec)]
        children.append(
            subprocess.Popen(
                [
                    *cli,
                    "generate",
                    *env_args,
                    "--rate",
                    str(rate),
                    "--customers",
                    str(customers),
                    *extra,
                ]
            )
        )
        err.print(
            "[green]demo running[/green]: metrics on "
            f"http://localhost:{settings.metrics_port}/metrics (Ctrl-C stops everything)"
        )
        _wait_children(children)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
        if local is not None:
            local.stop()
        err.print("demo stopped")


def _wait_children(children: list[subprocess.Popen[bytes]]) -> None:
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        return
    failed = [child.args for child in children if child.returncode not in (None, 0)]
    if failed:
        raise CXPulseError(f"a demo process exited early: {failed}; see its log above")


churn_app = typer.Typer(help="The churn-risk model: fit its parameters.", no_args_is_help=True)
app.add_typer(churn_app, name="churn")


@churn_app.command("fit")
def churn_fit(
    file: str = typer.Argument(..., help="JSON Lines file, .gz file, or - for stdin."),
    until: str = typer.Option(
        ...,
        "--until",
        envvar="CXPULSE_UNTIL",
        help="Last instant of history: a date (the end of that UTC day) or RFC 3339.",
    ),
    output_format: str = typer.Option(
        "text",
        "--format",
        envvar="CXPULSE_FORMAT",
        help="text (a table), json, or env (CXPULSE_BGNBD_PARAMS and CXPULSE_CHURN_WEIGHTS "
        "lines to source).",
    ),
) -> None:
    """Fit BG/NBD parameters (r, alpha, a, b) from the order.placed events up to --until, and
    the churn-score weights from the customer.churned events (when the history has them)."""

    def go() -> None:
        from rich.progress import TextColumn

        from pipeline.churn_fit import FORMATS, fit_file, format_result, parse_until

        if output_format not in FORMATS:
            raise ConfigurationError(
                f"--format {output_format!r} is not supported: use {' or '.join(FORMATS)}"
            )
        until_ms = parse_until(until)
        settings = load_settings()
        validator = settings.validator()
        # a live counter on a terminal only: logs and CI get the summary line below
        counter = Progress(
            TextColumn("{task.description}"),
            TextColumn("{task.completed:,.0f} lines"),
            console=err,
            transient=True,
            disable=not err.is_terminal,
        )
        with counter as progress:
            task = progress.add_task(f"reading {file}", total=None)
            run = fit_file(
                file,
                until_ms,
                validator,
                lambda n: progress.update(task, completed=n),
                config=settings.kpi_config(),
            )
        err.print(
            f"read {run.lines} lines: {run.orders} orders used, {run.orders_after_until} after "
            f"--until, {run.other_events} other events, {run.invalid_lines} invalid lines; "
            f"fitted {run.result.customers} customers in {run.fit_seconds:.2f} s",
            highlight=False,
        )
        sys.stdout.write(format_result(run.result, output_format))

    _run(go)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
