"""Configuration mistakes are usage errors (exit code 2) with a message that names the setting."""

from __future__ import annotations

import pytest

from pipeline.cli import load_settings
from pipeline.settings import Settings
from schemas.errors import ConfigurationError


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("CXPULSE_WINDOWS", "450m", "CXPULSE_WINDOWS"),  # over 6 h: whole hours only
        ("CXPULSE_WINDOWS", "1x", "CXPULSE_WINDOWS"),
        ("CXPULSE_FCR_HORIZON_S", "inf", "CXPULSE_FCR_HORIZON_S"),
        ("CXPULSE_FRT_TARGETS", '{"chatt": 60}', "CXPULSE_FRT_TARGETS"),
        ("CXPULSE_FRT_TARGETS", '{"chat": -1}', "CXPULSE_FRT_TARGETS"),
        ("CXPULSE_PARTITIONS", "zero", "CXPULSE_PARTITIONS"),
        ("CXPULSE_EVENTS_TOPIC", "cx.raw.chat", "output topics"),
        ("CXPULSE_SOURCE_TOPICS", "not json", "CXPULSE_FRT_TARGETS="),
    ],
)
def test_bad_settings_are_configuration_errors(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, named: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=named):
        load_settings()


def test_lists_read_as_comma_lists_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXPULSE_WINDOWS", "1h, 24h,7d")
    monkeypatch.setenv("CXPULSE_CURRENCIES", '["EUR", "CHF"]')
    settings = Settings()
    assert settings.windows == ("1h", "24h", "7d")
    assert settings.currencies == ("EUR", "CHF")
    assert settings.kpi_config().windows_s == (3600, 86400, 604800)


def test_missing_tls_file_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXPULSE_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("CXPULSE_SSL_CAFILE", "/nonexistent/ca.pem")
    with pytest.raises(ConfigurationError, match="CXPULSE_SSL_CAFILE"):
        Settings().ssl_context()


def test_credentials_never_show_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXPULSE_SASL_PASSWORD", "hunter2")
    settings = Settings()
    assert "hunter2" not in repr(settings)
    assert settings.sasl_password is not None
    assert settings.sasl_password.get_secret_value() == "hunter2"
