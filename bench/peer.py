"""Runs the Quix Streams peer (`bench/peer_quix.py`) and reads what it measured.

In: bootstrap servers, the source topics, a consumer group, a work folder. Out: the peer's
throughput (source messages over the time from its first message read to its last
aggregate update) and its per-channel backlog and FRT counts, to check it did the same work.

The peer needs `quixstreams` at the version pinned in the `bench` extra of pyproject.toml.
When this interpreter has it (`pip install -e .[bench]`), it runs here; otherwise a separate
virtual environment is made once under ``~/.cache/cxpulse/bench/`` with only that pin, so
the project's own environment is left alone (quixstreams caps pydantic and
pydantic-settings below the versions the project may have installed).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from bench.dataset import bench_cache_dir

Log = Callable[[str], None]
ROOT: Final = Path(__file__).resolve().parent.parent
PEER_SCRIPT: Final = Path(__file__).resolve().parent / "peer_quix.py"


@dataclass(frozen=True, slots=True)
class PeerResult:
    messages: int
    seconds: float
    rejected: int
    per_channel: dict[str, dict[str, Any]]
    version: str

    @property
    def events_per_s(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


def quixstreams_requirement() -> str:
    """The `quixstreams==X.Y.Z` pin of the `bench` extra in pyproject.toml."""
    with (ROOT / "pyproject.toml").open("rb") as handle:
        extras = tomllib.load(handle)["project"]["optional-dependencies"]
    for requirement in extras.get("bench", []):
        if str(requirement).replace(" ", "").startswith("quixstreams"):
            return str(requirement)
    raise RuntimeError("pyproject.toml has no quixstreams pin in the `bench` extra")


def peer_python(log: Log) -> tuple[str, str]:
    """(interpreter, requirement): this one if it has quixstreams, else the cached venv."""
    requirement = quixstreams_requirement()
    if importlib.util.find_spec("quixstreams") is not None:
        return sys.executable, requirement
    version = requirement.split("==", 1)[1] if "==" in requirement else "latest"
    venv = bench_cache_dir() / f"quixstreams-{version}"
    python = venv / "bin" / "python"
    marker = venv / ".complete"
    if not marker.is_file():
        log(f"installing {requirement} into {venv} (first run only)")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             requirement],
            check=True,
        )  # fmt: skip
        marker.write_text(requirement + "\n", encoding="utf-8")
    return str(python), requirement


def run_peer(
    bootstrap: str,
    topics: dict[str, str],
    group: str,
    work_dir: Path,
    log: Log,
    idle_timeout: float = 15.0,
) -> PeerResult:
    python, requirement = peer_python(log)
    result_path = work_dir / "peer-result.json"
    result_path.unlink(missing_ok=True)
    command = [
        python,
        "-W",
        "ignore",
        str(PEER_SCRIPT),
        "--bootstrap-servers",
        bootstrap,
        "--topics",
        orjson.dumps(topics).decode(),
        "--group",
        group,
        "--state-dir",
        str(work_dir / "peer-state"),
        "--result",
        str(result_path),
        "--idle-timeout",
        str(idle_timeout),
    ]
    log(f"  running the Quix Streams peer ({requirement}); it stops {idle_timeout:g}s after "
        "its input runs dry")  # fmt: skip
    with (work_dir / "peer.log").open("ab") as peer_log:
        proc = subprocess.Popen(command, stdout=peer_log, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        for raw in proc.stderr:  # its progress lines to our log, the rest to its own
            if raw.startswith(b"peer: "):
                log("  " + raw.decode(errors="replace").rstrip())
            else:
                peer_log.write(raw)
        returncode = proc.wait()
    if returncode != 0 or not result_path.is_file():
        tail = (work_dir / "peer.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"the Quix Streams peer failed (exit {returncode}):\n{tail}")
    data = orjson.loads(result_path.read_bytes())
    if data["first_s"] is None or data["last_s"] is None:
        raise RuntimeError("the Quix Streams peer read nothing")
    return PeerResult(
        messages=int(data["messages"]),
        seconds=float(data["last_s"]) - float(data["first_s"]),
        rejected=int(data["bad_json"]) + int(data["invalid"]),
        per_channel=data["per_channel"],
        version=requirement,
    )
