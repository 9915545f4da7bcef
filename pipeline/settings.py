"""All configuration, from `CXPULSE_*` environment variables and CLI flags (flags win).

This is the only module that reads the environment. Credentials are `SecretStr`, so they
never show up in logs, reprs or `/metrics`.
"""

from __future__ import annotations

import json
import math
import ssl
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from agents.config import (
    DEFAULT_BGNBD,
    DEFAULT_CHURN_HIGH,
    DEFAULT_CHURN_MEDIUM,
    DEFAULT_CHURN_WEIGHTS,
    DEFAULT_CURRENCIES,
    DEFAULT_FRT_TARGETS_S,
    KpiConfig,
)
from schemas.errors import ConfigurationError
from schemas.events import CHANNELS, SOURCE_KINDS
from schemas.validate import DEFAULT_MAX_BYTES, EventValidator

DEFAULT_TOPICS = ("billing", "delivery", "returns", "account", "product", "technical")


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration_s(text: str) -> int:
    """`90s`, `15m`, `1h`, `7d` -> seconds (whole minutes at least, for window buckets)."""
    number, unit = text[:-1], text[-1:]
    if unit not in _UNITS or not number.isdigit() or int(number) == 0:
        raise ValueError(f"{text!r} is not a duration like 15m, 1h or 7d")
    seconds = int(number) * _UNITS[unit]
    if seconds % 60:
        raise ValueError(f"{text!r}: windows are whole minutes")
    return seconds


class Settings(BaseSettings):
    """CX Pulse settings; every field reads `CXPULSE_<FIELD>` (upper case)."""

    model_config = SettingsConfigDict(env_prefix="CXPULSE_", extra="ignore", allow_inf_nan=False)

    bootstrap_servers: str = "localhost:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    app_id: str = "cxpulse"
    source_topics: dict[str, str] = Field(
        default_factory=lambda: {kind: f"cx.raw.{kind}" for kind in SOURCE_KINDS}
    )
    events_topic: str = "cx.events"
    dlq_topic: str = "cx.dlq"
    kpi_topic: str = "cx.kpi"
    kpi_partials_topic: str = "cx.kpi.partials"
    snapshot_interval_s: float = Field(10, gt=0)
    windows: Annotated[tuple[str, ...], NoDecode] = ("1h", "24h", "7d")
    churn_topic: str = "cx.churn"
    watermarks_topic: str = "cx.watermarks"
    watermark_interval_s: float = Field(1.0, gt=0)
    #: how long the group waits for a silent (killed) worker before moving its partitions
    session_timeout_s: float = Field(30, ge=6)
    #: how long a worker's clean stop (SIGTERM, Ctrl-C) may take before it exits anyway, as a
    #: crash would (exit 1; what it had not committed is redone on restart): with the broker
    #: gone, Faust's stop waits out its request timeouts
    shutdown_timeout_s: float = Field(30, gt=0)
    partitions: int = Field(6, ge=1, le=1024)
    replication_factor: int = Field(1, ge=1)

    metrics_host: str = "0.0.0.0"
    metrics_port: int = Field(9110, ge=0, le=65535)
    data_dir: Path | None = None
    #: where table state lives: RocksDB under `data_dir` (on disk, bounded memory, a restart on
    #: the same data dir reads only the changelog's tail) or the Python heap
    store: Literal["rocksdb", "memory"] = "rocksdb"
    #: RocksDB block cache, memtables charged to it, shared by every table of the worker
    store_memory_mib: int = Field(128, ge=16)

    frt_targets: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_FRT_TARGETS_S))
    fcr_horizon_s: float = Field(7 * 86400, gt=0)
    dedup_horizon_s: float = Field(86400, gt=0)
    allowed_lateness_s: float = Field(300, ge=0)
    idle_timeout_s: float = Field(60, gt=0)
    max_message_bytes: int = Field(DEFAULT_MAX_BYTES, gt=0)
    max_future_s: float = Field(86400, gt=0)
    conversation_topics: Annotated[tuple[str, ...], NoDecode] = DEFAULT_TOPICS
    currencies: Annotated[tuple[str, ...], NoDecode] = DEFAULT_CURRENCIES

    churn_half_life_s: float = Field(30 * 86400, gt=0)
    churn_medium: float = DEFAULT_CHURN_MEDIUM
    churn_high: float = DEFAULT_CHURN_HIGH
    churn_hysteresis: float = 0.05
    churn_weights: dict[str, float] = Field(default_factory=dict)
    #: BG/NBD parameters as `cxpulse churn fit --format json` prints them (extra keys ignored)
    bgnbd_params: dict[str, float] = Field(
        default_factory=lambda: dict(zip(("r", "alpha", "a", "b"), DEFAULT_BGNBD, strict=True))
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    @field_validator("source_topics")
    @classmethod
    def _known_kinds(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(SOURCE_KINDS))
        if unknown:
            raise ValueError(
                f"unknown source kinds {unknown}: use {', '.join(SOURCE_KINDS)} as keys"
            )
        return value

    def validator(self) -> EventValidator:
        """The validator of source messages, as configured."""
        return EventValidator(
            max_bytes=self.max_message_bytes,
            known_topics=self.conversation_topics,
            max_future_ms=int(self.max_future_s * 1000),
        )

    @field_validator("windows", "conversation_topics", "currencies", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        """`1h,24h,7d` or a JSON list, from the environment; a sequence from code."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return tuple(json.loads(text))
            return tuple(item.strip() for item in text.split(",") if item.strip())
        return value

    @field_validator("windows")
    @classmethod
    def _window_durations(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("give at least one window, e.g. 1h,24h,7d")
        for item in value:
            seconds = parse_duration_s(item)
            if seconds > 6 * 3600 and seconds % 3600:
                raise ValueError(f"{item!r}: windows over 6 h advance by the hour: whole hours")
        return value

    @field_validator("frt_targets")
    @classmethod
    def _frt_targets(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(CHANNELS))
        if unknown:
            raise ValueError(f"unknown channels {unknown}: use {', '.join(CHANNELS)}")
        bad = sorted(k for k, v in value.items() if not (math.isfinite(v) and v > 0))
        if bad:
            raise ValueError(f"targets must be finite seconds > 0: {bad}")
        return value

    @model_validator(mode="after")
    def _topics_apart(self) -> Settings:
        outputs = {
            self.events_topic,
            self.dlq_topic,
            self.kpi_topic,
            self.kpi_partials_topic,
            self.churn_topic,
            self.watermarks_topic,
        }
        loops = sorted(outputs & set(self.source_topics.values()))
        if loops:
            raise ValueError(f"source topics {loops} are also output topics: keep them apart")
        return self

    def kpi_config(self) -> KpiConfig:
        return KpiConfig(
            windows_s=tuple(parse_duration_s(w) for w in self.windows),
            frt_targets_s={**DEFAULT_FRT_TARGETS_S, **self.frt_targets},
            fcr_horizon_ms=int(self.fcr_horizon_s * 1000),
            dedup_horizon_ms=int(self.dedup_horizon_s * 1000),
            allowed_lateness_ms=int(self.allowed_lateness_s * 1000),
            currencies=self.currencies,
            churn_half_life_ms=int(self.churn_half_life_s * 1000),
            churn_medium=self.churn_medium,
            churn_high=self.churn_high,
            churn_hysteresis=self.churn_hysteresis,
            churn_weights={**DEFAULT_CHURN_WEIGHTS, **self.churn_weights},
            bgnbd=self._bgnbd(),
        )

    def _bgnbd(self) -> tuple[float, float, float, float]:
        try:
            p = self.bgnbd_params
            return (float(p["r"]), float(p["alpha"]), float(p["a"]), float(p["b"]))
        except KeyError as missing:
            raise ConfigurationError(
                f"CXPULSE_BGNBD_PARAMS lacks {missing}: give r, alpha, a and b, "
                "e.g. the output of `cxpulse churn fit FILE --until DATE --format json`"
            ) from None

    @property
    def dlq_max_bytes(self) -> int:
        """A dead letter carries the original in base64 (4/3 of it) plus a little metadata."""
        return 2 * self.max_message_bytes + 65536

    def topic_kinds(self) -> dict[str, str]:
        """Source topic name -> the channel kind its events default to."""
        return {topic: kind for kind, topic in self.source_topics.items()}

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.security_protocol not in ("SSL", "SASL_SSL"):
            return None
        try:
            context = ssl.create_default_context(
                cafile=str(self.ssl_cafile) if self.ssl_cafile else None
            )
            if self.ssl_certfile:
                context.load_cert_chain(
                    str(self.ssl_certfile), str(self.ssl_keyfile) if self.ssl_keyfile else None
                )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(
                f"cannot use the TLS files (CXPULSE_SSL_CAFILE, CXPULSE_SSL_CERTFILE, "
                f"CXPULSE_SSL_KEYFILE): {exc}"
            ) from None
        return context
