"""A local Prometheus server that scrapes CX Pulse workers and loads the mixin's rules and alerts.

In: the `/metrics` addresses of running workers (``host:port``, optionally with extra target
labels), the rule files (default: `deploy/mixin/rules.yaml` and `alerts.yaml`) and a
``prometheus`` binary (Debian package ``prometheus``, installed by `scripts/setup.sh`).
Out: a ``prometheus`` process on a free localhost port with a temporary TSDB, scraping and
evaluating every second, and a small client for its HTTP API (instant and range queries,
alerts, rules, targets). Failures raise :class:`PrometheusError` with a message that says what
to do. Used by the end-to-end tests and by `python -m deploy.preview`.

    with LocalPrometheus([ScrapeTarget("127.0.0.1:9110")]) as prometheus:
        prometheus.wait_for_targets_up()
        prometheus.query('channel:cx_first_response_breaches:ratio_rate5m')

The scrape job carries the labels of the mixin's selector (`deploy/mixin/config.py`, default
``job="cxpulse"``), so the recording rules pick the workers' series up as they would in a
deployment.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final

from deploy.mixin.config import DEFAULT_CONFIG
from deploy.mixin.generate import ALERTS_PATH, RULES_PATH
from pipeline.broker import free_port
from schemas.errors import CXPulseError

DEFAULT_RULE_FILES: Final = (RULES_PATH, ALERTS_PATH)
_INSTALL_HINT: Final = "apt-get install -y prometheus (or `make setup`)"
_MATCHER: Final = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')

#: One Prometheus API result: ``{"metric": {...}, "value": [t, "v"]}`` for instant queries,
#: ``{"metric": {...}, "values": [[t, "v"], ...]}`` for range queries.
Series = dict[str, Any]


class PrometheusError(CXPulseError):
    """The local Prometheus could not start, or a query it was sent failed."""


def selector_labels(selector: str) -> dict[str, str]:
    """The labels a scrape target needs to match a mixin selector like ``job="cxpulse"``.

    Only equality matchers can be satisfied by target labels; anything else is refused.
    """
    labels: dict[str, str] = {}
    rest = selector.strip()
    while rest:
        match = _MATCHER.match(rest)
        if match is None:
            raise PrometheusError(
                f'selector {selector!r}: only equality matchers (name="value", comma-separated) '
                "can be turned into scrape-target labels"
            )
        labels[match[1]] = json.loads(f'"{match[2]}"')
        rest = rest[match.end() :]
    return labels


@dataclass(frozen=True, slots=True)
class ScrapeTarget:
    """A worker's metrics address (``host:port``) and extra labels for its series."""

    address: str
    labels: Mapping[str, str] = field(default_factory=dict)


def prometheus_binary() -> str | None:
    """The ``prometheus`` executable on PATH (or Debian's /usr/bin/prometheus), if any."""
    return shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").is_file() else None
    )


def render_config(
    targets: Sequence[ScrapeTarget],
    rule_files: Sequence[Path],
    *,
    selector: str,
    scrape_interval: str,
    evaluation_interval: str,
) -> str:
    """The ``prometheus.yml`` for these targets (JSON, which is valid YAML)."""
    labels = selector_labels(selector)
    job = labels.pop("job", "cxpulse")
    static = [
        {"targets": [target.address], "labels": {**labels, **target.labels}} for target in targets
    ]
    config = {
        "global": {
            "scrape_interval": scrape_interval,
            "evaluation_interval": evaluation_interval,
            "scrape_timeout": scrape_interval,
        },
        "rule_files": [str(Path(path).resolve()) for path in rule_files],
        "scrape_configs": [{"job_name": job, "static_configs": static}],
    }
    return json.dumps(config, indent=2) + "\n"


class LocalPrometheus:
    """A ``prometheus`` process with a temporary TSDB; ``start()``/``stop()`` or ``with``."""

    def __init__(
        self,
        targets: Sequence[ScrapeTarget],
        *,
        rule_files: Sequence[Path] = DEFAULT_RULE_FILES,
        selector: str = DEFAULT_CONFIG.selector,
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        port: int | None = None,
        data_dir: Path | None = None,
        binary: str | None = None,
    ) -> None:
        if not targets:
            raise PrometheusError("give at least one scrape target (a worker's host:port)")
        self.targets = tuple(targets)
        self.rule_files = tuple(Path(path) for path in rule_files)
        self.selector = selector
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.port = port if port is not None else free_port()
        self._data_dir = data_dir
        self._temp_dir: Path | None = None
        self._binary = binary
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        if self._data_dir is None:
            if self._temp_dir is None:
                self._temp_dir = Path(tempfile.mkdtemp(prefix="cxpulse-prometheus-"))
            return self._temp_dir
        return self._data_dir

    @property
    def log_path(self) -> Path:
        return self.data_dir / "prometheus.log"

    def start(self, timeout: float = 60.0) -> None:
        """Start Prometheus and wait until it is ready (rules loaded, API answering)."""
        binary = self._binary or prometheus_binary()
        if binary is None:
            raise PrometheusError(f"no prometheus binary on PATH: {_INSTALL_HINT}")
        missing = [str(path) for path in self.rule_files if not path.is_file()]
        if missing:
            raise PrometheusError(f"rule files not found: {', '.join(missing)} (run `make rules`)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "prometheus.yml"
        config.write_text(
            render_config(
                self.targets,
                self.rule_files,
                selector=self.selector,
                scrape_interval=self.scrape_interval,
                evaluation_interval=self.evaluation_interval,
            ),
            encoding="utf-8",
        )
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1d",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._close(kill=False)
                raise PrometheusError(
                    f"prometheus exited with code {self._process.returncode}:\n{self.log_tail()}"
                )
            if self._ready():
                return
            time.sleep(0.2)
        self.stop()
        raise PrometheusError(f"prometheus not ready within {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (Prometheus flushes its head block), then SIGKILL after ``timeout``."""
        self._close(kill=True, timeout=timeout)
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def _close(self, *, kill: bool, timeout: float = 20.0) -> None:
        process = self._process
        if process is not None and process.poll() is None and kill:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> LocalPrometheus:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    # -- HTTP API ----------------------------------------------------------------------------

    def api(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """GET ``/api/v1/<path>``; the ``data`` of a success, PrometheusError otherwise."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        url = f"{self.url}/api/v1/{path}{query}"
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:  # 400/422/503 carry the error in the body
            try:
                body = json.loads(exc.read())
            except ValueError:
                raise PrometheusError(f"{path}: HTTP {exc.code} from Prometheus") from None
        except OSError as exc:
            raise PrometheusError(
                f"{path}: Prometheus at {self.url} did not answer: {exc}"
            ) from exc
        if body.get("status") != "success":
            raise PrometheusError(
                f"{path} {dict(params or {})}: {body.get('errorType')}: {body.get('error')}"
            )
        if body.get("warnings"):
            raise PrometheusError(f"{path} {dict(params or {})}: warnings {body['warnings']}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[Series]:
        """An instant query's vector (a scalar comes back as one series without labels)."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", params)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[Series] = data["result"]
        return result

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        """A range query's matrix."""
        data = self.api(
            "query_range",
            {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"},
        )
        result: list[Series] = data["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts now pending or firing (``labels``, ``state``, ``activeAt``, ``value``)."""
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def rules(self) -> list[dict[str, Any]]:
        """Every rule Prometheus loaded, flattened over groups (``type``, ``name``, ``query``,
        ``health``, ``lastError``)."""
        groups: Iterable[dict[str, Any]] = self.api("rules")["groups"]
        return [rule for group in groups for rule in group["rules"]]

    def wait_for_targets_up(self, timeout: float = 60.0) -> None:
        """Until every target has been scraped successfully at least once."""
        deadline = time.monotonic() + timeout
        active: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            active = self.api("targets", {"state": "active"})["activeTargets"]
            if len(active) == len(self.targets) and all(t["health"] == "up" for t in active):
                return
            time.sleep(0.5)
        states = [(t.get("scrapeUrl"), t.get("health"), t.get("lastError")) for t in active]
        raise PrometheusError(f"targets not up within {timeout:.0f}s: {states}")
