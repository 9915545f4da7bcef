"""A worker against Kafka over SASL_SSL (SCRAM-SHA-512, TLS with a throwaway CA), on a broker of
its own (`LocalBroker(sasl_ssl=...)`, started once for this module, separate from the session
broker): it processes events, a wrong password or an untrusted certificate fails at once with
exit code 2 and a message that says what to fix, the password shows up in no log, output or
`/metrics`, and `CXPULSE_METRICS_HOST=127.0.0.1` serves `/metrics` on loopback only."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.broker import LocalBroker, SaslSsl, free_port
from tests.exposition_parse import Key, summed_samples
from tests.integration.conftest import Pipeline, new_pipeline, wait_for
from tests.known_stream import jsonl

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

USER = "cxpulse-worker"
#: distinctive, so finding it anywhere in an output is no accident
PASSWORD = f"pw-{secrets.token_urlsafe(24)}"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    broker = LocalBroker(
        port=free_port(),
        data_dir=tmp_path_factory.mktemp("kafka-sasl-ssl"),
        sasl_ssl=SaslSsl(USER, PASSWORD),
    )
    broker.start()
    yield broker
    broker.stop()


def secured_pipeline(broker: LocalBroker, tmp_path: Path, password: str = PASSWORD) -> Pipeline:
    pipeline = new_pipeline(broker, tmp_path)
    pipeline.env.update(
        {
            "CXPULSE_SECURITY_PROTOCOL": "SASL_SSL",
            "CXPULSE_SASL_MECHANISM": "SCRAM-SHA-512",
            "CXPULSE_SASL_USERNAME": USER,
            "CXPULSE_SASL_PASSWORD": password,
            "CXPULSE_SSL_CAFILE": str(broker.ca_file),
        }
    )
    return pipeline


def cxpulse(
    pipeline: Pipeline, *args: str, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        env=pipeline.env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def counted(name: str, samples: dict[Key, float]) -> float:
    return sum(value for (n, _), value in samples.items() if n == name)


def listening(port: int) -> set[tuple[str, int]]:
    """(address, port) of the TCP sockets listening on `port`, from /proc/net/tcp{,6}."""
    found = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # the kernel prints each 32-bit word in host (little-endian) order
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.add((socket.inet_ntop(family, words), port))
    return found


def other_local_addresses() -> list[str]:
    """Addresses of this host other than 127.0.0.1: 127.0.0.2 (Linux routes all of
    127.0.0.0/8 to loopback) and the interfaces' own, if `hostname -I` lists any."""
    addresses = ["127.0.0.2"]
    if shutil.which("hostname"):
        found = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=False)
        addresses += [a for a in found.stdout.split() if ":" not in a and a != "127.0.0.1"]
    return addresses


def test_worker_processes_events_over_sasl_ssl(secured: LocalBroker, tmp_path: Path) -> None:
    pipeline = secured_pipeline(secured, tmp_path)
    pipeline.env["CXPULSE_LOG_LEVEL"] = "DEBUG"  # the most a log says: still no password
    path = tmp_path / "known.jsonl"
    path.write_bytes(jsonl())
    expected = summed_samples(pipeline.cli("compute", str(path)).decode())
    topics = cxpulse(pipeline, "topics", "create")
    assert topics.returncode == 0, topics.stderr
    worker = pipeline.start_worker()
    try:
        wait_for(lambda: pipeline.scrape() is not None, 90, "the worker's /metrics")
        replay = cxpulse(pipeline, "replay", str(path))
        assert replay.returncode == 0, replay.stderr

        names = ("cx_events_total", "cx_events_duplicate_total", "cx_events_rejected_total")
        wanted = {name: counted(name, expected) for name in names}
        wait_for(
            lambda: (
                {name: counted(name, summed_samples(pipeline.scrape() or "")) for name in names}
                == wanted
            ),
            90,
            f"the known stream to be counted: {wanted}",
        )
        scrape = pipeline.scrape() or ""
        bound = listening(pipeline.metrics_port)
        refused = {}
        for address in other_local_addresses():
            with socket.socket() as probe:
                probe.settimeout(5)
                refused[address] = probe.connect_ex((address, pipeline.metrics_port)) != 0
        assert worker.poll() is None, pipeline.worker_log()
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert f"Authenticated as {USER} via SCRAM-SHA-512" in log  # aiokafka, on each connection
    for output in (log, scrape, topics.stdout, topics.stderr, replay.stdout, replay.stderr):
        assert PASSWORD not in output
    # /metrics listens on 127.0.0.1 only, and nothing answers on the host's other addresses
    assert bound == {("127.0.0.1", pipeline.metrics_port)}
    assert all(refused.values()), refused


@pytest.mark.parametrize("command", [("worker",), ("topics", "create")])
def test_wrong_password_exits_2_with_what_to_fix(
    secured: LocalBroker, tmp_path: Path, command: tuple[str, ...]
) -> None:
    wrong = f"wrong-{secrets.token_urlsafe(12)}"
    pipeline = secured_pipeline(secured, tmp_path, password=wrong)
    result = cxpulse(pipeline, *command, timeout=60)  # a hang fails here
    assert result.returncode == 2, result.stderr
    assert f"refused the SASL credentials of user '{USER}'" in result.stderr
    assert "CXPULSE_SASL_PASSWORD" in result.stderr
    assert "Traceback" not in result.stderr
    for secret in (wrong, PASSWORD):
        assert secret not in result.stdout + result.stderr


def test_untrusted_broker_certificate_exits_2(secured: LocalBroker, tmp_path: Path) -> None:
    pipeline = secured_pipeline(secured, tmp_path)
    del pipeline.env["CXPULSE_SSL_CAFILE"]  # the system CAs do not know the throwaway CA
    result = cxpulse(pipeline, "worker", timeout=60)
    assert result.returncode == 2, result.stderr
    assert "is not trusted" in result.stderr and "CXPULSE_SSL_CAFILE" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
