"""Scripted incidents for the traffic generator, parsed from specs like ``outage:chat@10m+15m``.

In: an incident spec string (``KIND[:CHANNEL]@START+DURATION``, times relative to the generator's
start, as ``90``, ``30s``, ``10m``, ``2h``, ``1d`` or compounds such as ``1h30m``).
Out: an immutable :class:`Incident`, or a ConfigurationError that says what to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from schemas.errors import ConfigurationError

CONVERSATION_CHANNELS = ("chat", "email", "phone", "social", "web")

# The channels each kind may name; a spec without a channel hits all of them.
INCIDENT_KINDS: dict[str, tuple[str, ...]] = {
    "outage": CONVERSATION_CHANNELS,
    "bot_failure": ("chat", "social"),
    "shipping_delay": ("shop",),
}

_SPEC = re.compile(
    r"^(?P<kind>[a-z_]+)(?::(?P<channel>[a-z]+))?@(?P<start>[^+]+)\+(?P<duration>.+)$"
)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_EXAMPLE = "for example outage:chat@10m+15m, bot_failure@1h+30m or shipping_delay@0s+2h"


@dataclass(frozen=True, slots=True)
class Incident:
    """A scripted disturbance active from ``start_s`` for ``duration_s`` seconds of event time.

    ``channel`` is ``None`` when the incident hits every channel its kind applies to.
    """

    kind: str
    channel: str | None
    start_s: float
    duration_s: float

    def active(self, kind: str, channel: str | None, at_s: float) -> bool:
        """Whether this incident is of ``kind``, covers ``channel`` and runs at offset ``at_s``."""
        if kind != self.kind or not self.start_s <= at_s < self.end_s:
            return False
        return self.channel is None or channel is None or channel == self.channel

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``30s``, ``10m``, ``2h``, ``1d`` or ``1h30m``; ValueError if malformed."""
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"{text!r} is not a duration")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def parse_incident(spec: str) -> Incident:
    """Parse ``KIND[:CHANNEL]@START+DURATION``; raise ConfigurationError naming what is wrong."""
    match = _SPEC.match(spec.strip())
    if match is None:
        raise ConfigurationError(
            f"incident {spec!r} is not KIND[:CHANNEL]@START+DURATION ({_EXAMPLE})"
        )
    kind, channel = match["kind"], match["channel"]
    if kind not in INCIDENT_KINDS:
        known = ", ".join(sorted(INCIDENT_KINDS))
        raise ConfigurationError(f"incident {spec!r}: unknown kind {kind!r}; use one of {known}")
    allowed = INCIDENT_KINDS[kind]
    if channel is not None and channel not in allowed:
        raise ConfigurationError(
            f"incident {spec!r}: {kind} cannot hit channel {channel!r}; "
            f"use one of {', '.join(allowed)} or leave the channel out for all of them"
        )
    try:
        start_s = parse_duration(match["start"])
        duration_s = parse_duration(match["duration"])
    except ValueError as exc:
        raise ConfigurationError(
            f"incident {spec!r}: {exc}; write it like 90, 30s, 10m, 2h or 1h30m"
        ) from None
    if duration_s <= 0:
        raise ConfigurationError(f"incident {spec!r}: the duration must be longer than 0s")
    return Incident(kind=kind, channel=channel, start_s=start_s, duration_s=duration_s)
