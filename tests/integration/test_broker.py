"""LocalBroker against a real Kafka JVM: start, answer, stop, restart on the same data, kill."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pipeline.broker import (
    DEFAULT_KAFKA_VERSION,
    LocalBroker,
    broker_answers,
    ensure_kafka_jars,
    free_port,
)
from schemas.errors import BrokerError

pytestmark = pytest.mark.integration


def test_closed_port_does_not_answer() -> None:
    assert broker_answers(f"localhost:{free_port()}", timeout=1.0) is False


def test_silent_listener_is_not_a_broker() -> None:
    # Accepts TCP (the kernel completes the handshake) but never speaks Kafka.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        assert broker_answers(f"127.0.0.1:{port}", timeout=0.5) is False


def test_missing_tools_say_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(BrokerError, match="apt-get install"):
        ensure_kafka_jars(DEFAULT_KAFKA_VERSION, tmp_path / "cache", log=lambda _: None)


@pytest.mark.timeout(600)  # the first run downloads the jars
def test_restart_reuses_data_dir_and_survives_kill(tmp_path: Path) -> None:
    lines: list[str] = []
    broker = LocalBroker(port=free_port(), data_dir=tmp_path / "kafka", log=lines.append)
    meta = tmp_path / "kafka" / "kafka-logs" / "meta.properties"
    try:
        broker.start()
        assert broker_answers(broker.bootstrap)
        formatted = meta.read_text()
        broker.stop()
        assert not broker_answers(broker.bootstrap, timeout=1.0)

        broker.start()
        assert broker_answers(broker.bootstrap)
        assert meta.read_text() == formatted  # same cluster id: storage was not reformatted
        assert sum("formatting" in line for line in lines) == 1

        broker.kill()
        assert not broker_answers(broker.bootstrap, timeout=1.0)
        broker.start()
        assert broker_answers(broker.bootstrap)
    finally:
        broker.stop()
    assert not broker.running
    assert (tmp_path / "kafka" / "logs" / "server.log").is_file()  # a given data_dir is kept


@pytest.mark.timeout(600)
def test_context_manager_removes_temp_data_dir() -> None:
    with LocalBroker(port=free_port(), log=lambda _: None) as broker:
        assert broker_answers(broker.bootstrap)
        data_dir = broker.data_dir
        assert data_dir.is_dir()
        with pytest.raises(BrokerError, match="already answers"):
            LocalBroker(port=broker.port, log=lambda _: None).start()
    assert not data_dir.exists()
    assert not broker_answers(broker.bootstrap, timeout=1.0)
