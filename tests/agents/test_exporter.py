"""`/metrics` is served by its own service, started before the Faust app, so a restarting worker
answers scrapes while its tables recover (a worker whose recovery takes minutes would otherwise
look dead to Prometheus and to `CXWorkerDown`)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from prometheus_client import CollectorRegistry, Counter

from pipeline.app import create_app, faust_worker
from pipeline.broker import free_port
from pipeline.settings import Settings


def test_the_exporter_starts_before_the_app(tmp_path: Path) -> None:
    bundle = create_app(
        Settings(bootstrap_servers="localhost:1", metrics_port=0, data_dir=tmp_path),
        CollectorRegistry(),
    )
    worker = faust_worker(bundle, "warning", shutdown_timeout_s=30)
    assert list(worker.on_init_dependencies()) == [bundle.exporter, bundle.app]


async def test_the_exporter_serves_the_registry_without_the_app(tmp_path: Path) -> None:
    port = free_port()
    bundle = create_app(
        Settings(
            bootstrap_servers="localhost:1",
            metrics_host="127.0.0.1",
            metrics_port=port,
            data_dir=tmp_path,
        ),
        CollectorRegistry(),
    )
    Counter("probe_total", "a series only this test adds", registry=bundle.registry).inc(3)
    await bundle.exporter.start()  # the app itself is never started: no Kafka needed
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/metrics") as response,
        ):
            assert response.status == 200
            body = await response.text()
    finally:
        await bundle.exporter.stop()
    assert "probe_total 3.0" in body
    # KPI collectors answer before any partition is recovered: no KPI series yet, no error
    assert "cx_events_total{" not in body
