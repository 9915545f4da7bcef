"""Profile a running worker with py-spy and rank its hot spots.

In: a process id, output paths. Out: a flame graph (SVG), py-spy's collapsed stacks, and the
functions ranked by own time ("self": the frame on top of the stack) and by inclusive time
(on the stack at all), as shares of the samples py-spy took while the process was busy
(idle threads are left out, so waiting in the event loop's `select` is not counted).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class HotSpot:
    function: str
    self_share: float
    total_share: float


def py_spy() -> str | None:
    """The py-spy executable beside this interpreter or on PATH, if any."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.is_file():
        return str(beside)
    return shutil.which("py-spy")


class Recording:
    """`py-spy record` on a pid, in two formats at once; stop() makes it write them."""

    def __init__(self, pid: int, svg: Path, collapsed: Path, rate: int = 100) -> None:
        executable = py_spy()
        if executable is None:
            raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
        svg.parent.mkdir(parents=True, exist_ok=True)
        common = [executable, "record", "--pid", str(pid), "--rate", str(rate)]
        self.collapsed = collapsed
        self.procs = [
            subprocess.Popen(
                [*common, "--format", "flamegraph", "-o", str(svg)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
            subprocess.Popen(
                [*common, "--format", "raw", "-o", str(collapsed)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
        ]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()


def hot_spots(collapsed: Path, top: int = 25) -> list[HotSpot]:
    """Rank functions of py-spy's collapsed stacks (`frame;frame;... count` per line)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(frame) for frame in stack.split(";")]
        # the first frames are the process and thread names py-spy adds
        frames = [frame for frame in frames if frame]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if total == 0:
        return []
    return [
        HotSpot(function, count / total, inclusive[function] / total)
        for function, count in own.most_common(top)
    ]


def top_inclusive(collapsed: Path, top: int = 40) -> list[tuple[str, float]]:
    """Functions by inclusive share (on the stack at all)."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        for frame in {_short(frame) for frame in stack.split(";")}:
            if frame:
                inclusive[frame] += count
    return [(f, c / total) for f, c in inclusive.most_common(top)] if total else []


def _short(frame: str) -> str:
    """`func (path/to/module.py:12)` -> `func (module.py)`; drops py-spy's thread frames."""
    if frame.startswith(("process ", "thread ")):
        return ""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = path.split("/")
    site = parts.index("site-packages") + 1 if "site-packages" in parts else len(parts) - 2
    parts = parts[max(site, 0) :]
    return f"{name} ({'/'.join(parts)})" if path else name
