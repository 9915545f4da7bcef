"""A local single-node Apache Kafka (KRaft, combined broker+controller) for development and tests.

In: a Kafka version (default 3.9.1, 4.1.x also works), a port, an optional data folder, and a
``java`` and ``mvn`` on PATH. Out: a running ``kafka.Kafka`` JVM that answers on
``localhost:<port>``, its jars cached once per version under ``~/.cache/cxpulse/kafka``, and its
logs under ``<data_dir>/logs`` (never on our stdout). Failures raise ``BrokerError`` with a message
that says what to do. With ``sasl_ssl=SaslSsl(username, password)`` its one client listener is
SASL_SSL with SCRAM-SHA-512 instead of PLAINTEXT: a throwaway CA and broker certificate made with
``keytool`` (``<data_dir>/tls``, CA in ``broker.ca_file``), the user created at format time.

    with LocalBroker(port=free_port()) as broker:
        produce_to(broker.bootstrap)
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Final

from schemas.errors import BrokerError

DEFAULT_KAFKA_VERSION: Final = "3.9.1"

# The pipeline dead-letters messages above 1 MiB, so the broker must accept them with headroom.
MESSAGE_MAX_BYTES: Final = 4 * 1024 * 1024

_INSTALL_HINT: Final = "apt-get install -y openjdk-17-jre-headless maven"
_SCRAM: Final = "SCRAM-SHA-512"
# SCRAM names and passwords go into StorageTool's `[name=...,password=...]` and a JAAS line
_SAFE_CREDENTIAL: Final = re.compile(r"[A-Za-z0-9._~+/-]{1,128}")
_MARKER: Final = ".complete"
_LOG_TAIL_LINES: Final = 30
_MVN_TIMEOUT_S: Final = 900.0
_VERSION_RE: Final = re.compile(r"^\d+\.\d+\.\d+(?:-[A-Za-z0-9.]+)?$")

# Logging bindings per major version, as resolved against Maven Central. Kafka 4.x logs through
# log4j2 but still resolves slf4j-api 1.7.36, so the slf4j-1.x binding (log4j-slf4j-impl) is the
# one that works; the slf4j2 binding would silently fall back to a no-op logger.
_LOGGING_DEPS: Final[dict[int, tuple[tuple[str, str, str], ...]]] = {
    3: (("org.slf4j", "slf4j-reload4j", "1.7.36"),),
    4: (
        ("org.apache.logging.log4j", "log4j-slf4j-impl", "2.24.3"),
        ("org.apache.logging.log4j", "log4j-core", "2.24.3"),
        ("org.apache.logging.log4j", "log4j-api", "2.24.3"),
    ),
}


def _log_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def default_cache_dir() -> Path:
    """Where Kafka jars are cached: ``$XDG_CACHE_HOME/cxpulse/kafka`` or ``~/.cache/...``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "cxpulse" / "kafka"


def free_port() -> int:
    """A TCP port that is free on localhost right now (another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _major(version: str) -> int:
    if not _VERSION_RE.match(version):
        raise BrokerError(f"Kafka version {version!r} is not of the form X.Y.Z (e.g. 3.9.1)")
    major = int(version.split(".", 1)[0])
    if major not in _LOGGING_DEPS:
        raise BrokerError(f"Kafka {version} is not supported; use a 3.x or 4.x version")
    return major


def _require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BrokerError(
            f"`{name}` is not on PATH; the local Kafka broker needs Java 17+ and Maven "
            f"(e.g. `{_INSTALL_HINT}`)"
        )
    return path


_STACK_FRAME_RE: Final = re.compile(r"^\s+(?:at |\.\.\. \d+ more).*\n?", re.MULTILINE)
_ANSI_RE: Final = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    # mvn colours its output even in batch mode on some versions; escapes are noise in an error.
    return "\n".join(_ANSI_RE.sub("", text).rstrip().splitlines()[-lines:])


def _pom(version: str) -> str:
    deps = (("org.apache.kafka", "kafka_2.13", version), *_LOGGING_DEPS[_major(version)])
    entries = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>"
        for g, a, v in deps
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>cxpulse.local</groupId>
  <artifactId>kafka-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{entries}
  </dependencies>
</project>
"""


def ensure_kafka_jars(
    version: str, cache_dir: Path, log: Callable[[str], None] = _log_to_stderr
) -> Path:
    """Return ``cache_dir/<version>/libs`` full of Kafka's runtime jars, downloading them once."""
    _major(version)
    _require_tool("java")  # the jars are useless without it; fail before a long download
    libs = cache_dir / version / "libs"
    if (libs / _MARKER).is_file():
        return libs
    mvn = _require_tool("mvn")
    libs.parent.mkdir(parents=True, exist_ok=True)
    log(f"downloading Kafka {version} jars from Maven Central (first run only)...")
    started = time.monotonic()
    # Download beside the final folder and rename at the end, so an interrupted run never leaves
    # a folder that looks complete; the marker is written last and is what we trust.
    staging = Path(tempfile.mkdtemp(prefix="libs.tmp-", dir=libs.parent))
    try:
        with tempfile.TemporaryDirectory(prefix="cxpulse-kafka-pom-") as pom_dir:
            (Path(pom_dir) / "pom.xml").write_text(_pom(version), encoding="utf-8")
            cmd = [
                mvn,
                "-q",
                "-B",
                "-Dstyle.color=never",
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
            ]
            try:
                done = subprocess.run(
                    cmd,
                    cwd=pom_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    timeout=_MVN_TIMEOUT_S,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise BrokerError(
                    f"downloading Kafka {version} jars took over {_MVN_TIMEOUT_S:.0f}s; "
                    "check network access to Maven Central (repo.maven.apache.org) and retry"
                ) from exc
        if done.returncode != 0:
            raise BrokerError(
                f"mvn could not download Kafka {version} (exit {done.returncode}); check the "
                f"version exists on Maven Central and the network is reachable:\n"
                f"{_tail(done.stdout)}"
            )
        if not (staging / f"kafka_2.13-{version}.jar").is_file():
            raise BrokerError(f"mvn finished but kafka_2.13-{version}.jar is missing in {staging}")
        (staging / _MARKER).write_text(f"kafka {version}\n", encoding="utf-8")
        if libs.exists() and not (libs / _MARKER).is_file():
            shutil.rmtree(libs)  # left over by an older, interrupted layout: redo it
        try:
            staging.rename(libs)
        except OSError:
            # Another process finished the same download first; its copy is as good as ours.
            if not (libs / _MARKER).is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):
            libs.parent.rmdir()  # only succeeds when empty, i.e. a version that never downloaded
    jars = sum(1 for _ in libs.glob("*.jar"))
    log(f"Kafka {version}: {jars} jars in {libs} ({time.monotonic() - started:.0f}s)")
    return libs


def _split_bootstrap(bootstrap: str) -> list[tuple[str, int]]:
    addresses = []
    for item in bootstrap.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"bootstrap address {item!r} is not host:port")
        addresses.append((host.strip("[]"), int(port)))
    return addresses


def _recv_exact(sock: socket.socket, size: int, deadline: float) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        chunks += chunk
    return bytes(chunks)


def _api_versions_ok(
    host: str, port: int, timeout: float, context: ssl.SSLContext | None = None
) -> bool:
    # ApiVersions v0 is the one request every broker version answers (it is how clients negotiate
    # versions), and its v0 response layout is fixed, so a hand-rolled frame is enough.
    deadline = time.monotonic() + timeout
    correlation_id = 0x0C0FFEE
    client_id = b"cxpulse-probe"
    # header v1: api_key=18 (ApiVersions), api_version=0, correlation_id, client_id; empty body
    payload = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with contextlib.ExitStack() as stack:
            sock = stack.enter_context(socket.create_connection((host, port), timeout=timeout))
            if context is not None:
                # ApiVersions is answered before SASL authentication, so TLS is all it needs
                sock = stack.enter_context(context.wrap_socket(sock, server_hostname=host))
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.sendall(struct.pack(">i", len(payload)) + payload)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4, deadline))
            if not 10 <= size <= 1 << 20:
                return False
            body = _recv_exact(sock, size, deadline)
    except (OSError, TimeoutError):
        return False
    got_id, error_code, count = struct.unpack_from(">ihi", body)
    # 35 = UNSUPPORTED_VERSION: still a real broker, replying with the versions it does support.
    return (
        got_id == correlation_id and error_code in (0, 35) and count >= 0 and size == 10 + 6 * count
    )


def broker_answers(
    bootstrap: str, timeout: float = 2.0, ssl_context: ssl.SSLContext | None = None
) -> bool:
    """True when a Kafka broker at ``host:port`` (or any of ``a:1,b:2``) answers ApiVersions
    (over TLS with ``ssl_context``)."""
    return any(
        _api_versions_ok(host, port, timeout, ssl_context)
        for host, port in _split_bootstrap(bootstrap)
    )


@dataclass(frozen=True, slots=True)
class SaslSsl:
    """A SASL_SSL (SCRAM-SHA-512) client listener with one user, who is also the super user
    and the broker's own identity on that listener. For tests and development only: the
    credentials end up in the broker's config files and on the StorageTool command line."""

    username: str
    password: str

    def __post_init__(self) -> None:
        for what, value in (("username", self.username), ("password", self.password)):
            if not _SAFE_CREDENTIAL.fullmatch(value):
                raise BrokerError(
                    f"SCRAM {what} must be 1-128 of A-Z a-z 0-9 . _ ~ + / - "
                    "(it is written into Kafka's config unescaped)"
                )

    def __repr__(self) -> str:
        return f"SaslSsl(username={self.username!r})"


def _make_tls(folder: Path, log: Callable[[str], None]) -> str:
    """A throwaway CA (``ca.pem``) and a broker key and certificate for ``localhost`` signed by
    it (``broker.p12``, with the CA also in ``truststore.p12``), made with the JDK's keytool
    once per folder; returns the stores' password (kept in ``store.pass``)."""
    password_file = folder / "store.pass"
    done = folder / _MARKER
    if done.is_file() and password_file.is_file():
        return password_file.read_text(encoding="ascii").strip()
    keytool = _require_tool("keytool")
    if folder.exists():
        shutil.rmtree(folder)  # an interrupted run: start over
    folder.mkdir(parents=True)
    password = secrets.token_urlsafe(24)
    password_file.write_text(password, encoding="ascii")
    password_file.chmod(0o600)
    log(f"making a throwaway CA and broker certificate in {folder}")
    san = "SAN=dns:localhost,ip:127.0.0.1"
    common = ["-storetype", "PKCS12", "-storepass", password, "-keypass", password]
    steps = [
        ["-genkeypair", "-alias", "ca", "-keystore", "ca.p12", "-dname", "CN=cxpulse test CA",
         "-ext", "bc:c", "-keyalg", "RSA", "-keysize", "2048", "-validity", "30", *common],
        ["-exportcert", "-rfc", "-alias", "ca", "-keystore", "ca.p12", "-file", "ca.pem",
         *common],
        ["-genkeypair", "-alias", "broker", "-keystore", "broker.p12", "-dname", "CN=localhost",
         "-ext", san, "-keyalg", "RSA", "-keysize", "2048", "-validity", "30", *common],
        ["-certreq", "-alias", "broker", "-keystore", "broker.p12", "-file", "broker.csr",
         *common],
        ["-gencert", "-rfc", "-alias", "ca", "-keystore", "ca.p12", "-infile", "broker.csr",
         "-outfile", "broker.pem", "-ext", san, "-validity", "30", *common],
        ["-importcert", "-noprompt", "-alias", "ca", "-keystore", "broker.p12", "-file",
         "ca.pem", *common],
        ["-importcert", "-noprompt", "-alias", "broker", "-keystore", "broker.p12", "-file",
         "broker.pem", *common],
        ["-importcert", "-noprompt", "-alias", "ca", "-keystore", "truststore.p12", "-file",
         "ca.pem", *common],
    ]  # fmt: skip
    for step in steps:
        done_step = subprocess.run(
            [keytool, *step],
            cwd=folder,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done_step.returncode != 0:
            raise BrokerError(
                f"keytool {step[0]} failed (exit {done_step.returncode}) in {folder}:\n"
                f"{_tail(done_step.stdout + done_step.stderr)}"
            )
    done.write_text("tls\n", encoding="utf-8")
    return password


def _cluster_id() -> str:
    # Kafka's own format (Uuid.toString): url-safe base64 of 16 random bytes, no padding. Kafka
    # avoids ids starting with '-' because its command-line parsers read them as options.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not cid.startswith("-"):
            return cid


def _port_bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Java sets SO_REUSEADDR on its listeners; without it here, TIME_WAIT leftovers of a
        # killed broker would make a perfectly usable port look taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


_LOG4J1_CONFIG: Final = """\
log4j.rootLogger=INFO, server
log4j.appender.server=org.apache.log4j.RollingFileAppender
log4j.appender.server.File=${kafka.logs.dir}/server.log
log4j.appender.server.MaxFileSize=20MB
log4j.appender.server.MaxBackupIndex=3
log4j.appender.server.layout=org.apache.log4j.PatternLayout
log4j.appender.server.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
"""

_LOG4J2_CONFIG: Final = """\
status = warn
name = cxpulse-kafka
appender.server.type = RollingFile
appender.server.name = server
appender.server.fileName = ${sys:kafka.logs.dir}/server.log
appender.server.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.server.layout.type = PatternLayout
appender.server.layout.pattern = [%d] %p %m (%c)%n
appender.server.policies.type = Policies
appender.server.policies.size.type = SizeBasedTriggeringPolicy
appender.server.policies.size.size = 20MB
appender.server.strategy.type = DefaultRolloverStrategy
appender.server.strategy.max = 3
rootLogger.level = info
rootLogger.appenderRef.server.ref = server
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.state.name = state.change.logger
logger.state.level = warn
"""

# Brokers started and not yet stopped (killed ones too, for their temp dirs). Strong references on
# purpose: a broker its owner forgot must still be stopped at exit, so no JVM outlives us.
_RUNNING: set[LocalBroker] = set()


@atexit.register
def _stop_leftovers() -> None:
    for broker in list(_RUNNING):
        with contextlib.suppress(Exception):
            broker.stop(timeout=10.0)


class LocalBroker:
    """One KRaft node (broker+controller) as a child JVM; start/stop/kill, or use as a context."""

    def __init__(
        self,
        port: int = 9092,
        data_dir: Path | None = None,
        version: str = DEFAULT_KAFKA_VERSION,
        cache_dir: Path | None = None,
        log: Callable[[str], None] = _log_to_stderr,
        heap: str = "512m",
        sasl_ssl: SaslSsl | None = None,
    ) -> None:
        _major(version)
        self.port = port
        self.sasl_ssl = sasl_ssl
        self.version = version
        self.bootstrap = f"localhost:{port}"
        self.cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
        self.heap = heap
        self._log = log
        self._given_data_dir = data_dir
        self._temp_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._console: IO[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        """The broker's folder (config, ``kafka-logs`` data, ``logs``); a temp dir if none given."""
        if self._given_data_dir is not None:
            return self._given_data_dir
        if self._temp_dir is None:
            self._temp_dir = Path(tempfile.mkdtemp(prefix="cxpulse-kafka-"))
        return self._temp_dir

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def security_protocol(self) -> str:
        """What clients set as ``security.protocol``: ``PLAINTEXT`` or ``SASL_SSL``."""
        return "PLAINTEXT" if self.sasl_ssl is None else "SASL_SSL"

    @property
    def ca_file(self) -> Path | None:
        """The CA certificate (PEM) clients trust for the SASL_SSL listener; None without it."""
        return None if self.sasl_ssl is None else self.data_dir / "tls" / "ca.pem"

    def _client_ssl_context(self) -> ssl.SSLContext | None:
        ca_file = self.ca_file
        return None if ca_file is None else ssl.create_default_context(cafile=str(ca_file))

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 180.0) -> None:
        """Start the broker (formatting its storage on first use) and wait until it answers."""
        if self.running:
            return
        deadline = time.monotonic() + timeout
        libs = ensure_kafka_jars(self.version, self.cache_dir, self._log)
        if broker_answers(self.bootstrap, timeout=1.0):
            raise BrokerError(
                f"a Kafka broker already answers on {self.bootstrap}; stop it or pick another port"
            )
        if not _port_bindable(self.port):
            raise BrokerError(f"port {self.port} is in use; pick another port (e.g. free_port())")
        data_dir = self.data_dir
        kafka_logs = data_dir / "kafka-logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        config = data_dir / "server.properties"
        store_password = None
        if self.sasl_ssl is not None:
            store_password = _make_tls(data_dir / "tls", self._log)
        properties = self._server_properties(free_port(), kafka_logs, store_password)
        config.write_text(properties, encoding="utf-8")
        if store_password is not None:
            config.chmod(0o600)  # it holds the SCRAM password and the stores' password
        jvm_args = self._jvm_args(libs)
        try:
            # meta.properties is what StorageTool writes last; without it the storage is not
            # formatted yet (first start), with it formatting again would be refused anyway.
            if not (kafka_logs / "meta.properties").is_file():
                self._format(jvm_args, config)
            self._launch(jvm_args, config)
            self._wait_until_ready(deadline, timeout)
        except BaseException:
            self._terminate(signal.SIGKILL, 5.0)
            self._drop_temp_dir()
            raise
        _RUNNING.add(self)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the broker, SIGKILL it after ``timeout``; removes a temp data dir. Idempotent."""
        self._terminate(signal.SIGTERM, timeout)
        self._drop_temp_dir()
        _RUNNING.discard(self)

    def kill(self) -> None:
        """SIGKILL the broker, keeping its data so ``start()`` recovers from the same data dir."""
        self._terminate(signal.SIGKILL, 10.0)

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _server_properties(
        self, controller_port: int, kafka_logs: Path, store_password: str | None = None
    ) -> str:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            # Static voters: accepted by 3.9 and 4.x alike, and they keep working when the
            # controller port changes between restarts (only the id is persisted).
            "controller.quorum.voters": f"1@localhost:{controller_port}",
            "listeners": f"PLAINTEXT://localhost:{self.port},CONTROLLER://localhost:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://localhost:{self.port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(kafka_logs),
            "num.partitions": "6",
            "default.replication.factor": "1",
            # Topics are created on purpose by the pipeline; a typo must not create a new one.
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            # The defaults (50) make the first consumer group wait for 50 partitions to load.
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "6",
            "group.initial.rebalance.delay.ms": "0",
            # After kill() the controller refuses the restarted broker until the old incarnation's
            # session expires (default 9 s, ~14 s to answer); a single local node can afford less.
            "broker.session.timeout.ms": "4000",
            "broker.heartbeat.interval.ms": "1000",
            "message.max.bytes": str(MESSAGE_MAX_BYTES),
            "replica.fetch.max.bytes": str(MESSAGE_MAX_BYTES),
        }
        if self.sasl_ssl is not None and store_password is not None:
            props.update(self._sasl_ssl_properties(controller_port, store_password))
        if _major(self.version) >= 4:
            # Share groups' state topic defaults to 3 replicas, which one node cannot host.
            props["share.coordinator.state.topic.replication.factor"] = "1"
            props["share.coordinator.state.topic.min.isr"] = "1"
        lines = [f"{key}={value}" for key, value in props.items()]
        return (
            "# written by cxpulse pipeline.broker; rewritten on every start\n"
            + "\n".join(lines)
            + "\n"
        )

    def _sasl_ssl_properties(self, controller_port: int, store_password: str) -> dict[str, str]:
        """The client listener as SASL_SSL (SCRAM-SHA-512), also used between brokers; the
        controller listener stays PLAINTEXT on localhost."""
        assert self.sasl_ssl is not None
        user = self.sasl_ssl
        tls = self.data_dir / "tls"
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{user.username}" password="{user.password}";'
        )
        return {
            "listeners": f"SASL_SSL://localhost:{self.port},"
            f"CONTROLLER://localhost:{controller_port}",
            "advertised.listeners": f"SASL_SSL://localhost:{self.port}",
            "inter.broker.listener.name": "SASL_SSL",
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
            "sasl.enabled.mechanisms": _SCRAM,
            "sasl.mechanism.inter.broker.protocol": _SCRAM,
            f"listener.name.sasl_ssl.{_SCRAM.lower()}.sasl.jaas.config": jaas,
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(tls / "broker.p12"),
            "ssl.keystore.password": store_password,
            "ssl.key.password": store_password,
            "ssl.truststore.type": "PKCS12",
            "ssl.truststore.location": str(tls / "truststore.p12"),
            "ssl.truststore.password": store_password,
            # Authorization on: only the super user may do anything on the client listener.
            # ANONYMOUS is the principal of the PLAINTEXT controller listener (localhost only),
            # through which the broker part of this node talks to its controller part.
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{user.username};User:ANONYMOUS",
        }

    def _jvm_args(self, libs: Path) -> list[str]:
        java = _require_tool("java")
        if _major(self.version) >= 4:
            log_config = self.data_dir / "log4j2.properties"
            log_config.write_text(_LOG4J2_CONFIG, encoding="utf-8")
            # log4j2's own shutdown hook would stop logging while Kafka is still shutting down,
            # losing exactly the lines that explain a slow or failed stop; appenders flush per line.
            log_flags = [
                f"-Dlog4j2.configurationFile={log_config}",
                "-Dlog4j2.shutdownHookEnabled=false",
            ]
        else:
            log_config = self.data_dir / "log4j.properties"
            log_config.write_text(_LOG4J1_CONFIG, encoding="utf-8")
            log_flags = [f"-Dlog4j.configuration={log_config.as_uri()}"]
        return [
            java,
            f"-Xmx{self.heap}",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.logs_dir}",
            *log_flags,
            "-cp",
            f"{libs}{os.sep}*",
        ]

    def _format(self, jvm_args: list[str], config: Path) -> None:
        self._log(f"formatting KRaft storage in {self.data_dir}")
        cmd = [
            *jvm_args,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            _cluster_id(),
            "-c",
            str(config),
        ]
        if self.sasl_ssl is not None:
            user = self.sasl_ssl
            cmd += ["--add-scram", f"{_SCRAM}=[name={user.username},password={user.password}]"]
        try:
            done = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=120.0,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(f"formatting Kafka storage in {self.data_dir} hung for 120s") from exc
        if done.returncode != 0:
            hint = "" if self._given_data_dir is None else "; delete that folder to start over"
            raise BrokerError(
                f"formatting Kafka storage in {self.data_dir} failed (exit {done.returncode})"
                f"{hint}:\n{_tail(done.stdout)}"
            )

    def _launch(self, jvm_args: list[str], config: Path) -> None:
        # JVM-level output (crashes, early classpath errors) lands next to server.log, not on our
        # stdout; the broker's own logging goes to server.log via the log4j config.
        self._console = (self.logs_dir / "console.out").open("ab")
        self._proc = subprocess.Popen(
            [*jvm_args, "kafka.Kafka", str(config)],
            cwd=self.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=self._console,
            stderr=subprocess.STDOUT,
            # Own process group, so stop()/kill() reach anything the JVM spawns and a Ctrl-C
            # in our terminal does not hit the broker before we stop it in order.
            start_new_session=True,
        )
        self._log(f"starting Kafka {self.version} on {self.bootstrap} (logs: {self.logs_dir})")

    def _wait_until_ready(self, deadline: float, timeout: float) -> None:
        started = time.monotonic()
        while True:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                code = None if proc is None else proc.returncode
                raise BrokerError(
                    f"Kafka exited (code {code}) before answering on {self.bootstrap}; "
                    f"last lines of its logs:\n{self._log_tail()}"
                )
            if broker_answers(self.bootstrap, 1.0, self._client_ssl_context()):
                self._log(f"Kafka answers on {self.bootstrap} ({time.monotonic() - started:.1f}s)")
                return
            if time.monotonic() >= deadline:
                raise BrokerError(
                    f"Kafka did not answer on {self.bootstrap} within {timeout:.0f}s; "
                    f"last lines of its logs:\n{self._log_tail()}"
                )
            time.sleep(0.25)

    def _log_tail(self) -> str:
        parts = []
        for name in ("server.log", "console.out"):
            path = self.logs_dir / name
            with contextlib.suppress(OSError):
                text = path.read_text(encoding="utf-8", errors="replace")
                # Java stack frames would push the exception's message out of a 30-line tail.
                text = _STACK_FRAME_RE.sub("", text)
                if text.strip():
                    parts.append(f"--- {path}\n{_tail(text)}")
        return "\n".join(parts) or f"(no output in {self.logs_dir})"

    def _terminate(self, sig: signal.Signals, timeout: float) -> None:
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            self._proc = None
        if self._console is not None:
            self._console.close()
            self._console = None

    def _drop_temp_dir(self) -> None:
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None
