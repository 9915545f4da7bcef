"""deploy/alertmanager/alertmanager.yml: valid for amtool, and routing each severity of the CX
Pulse alerts (deploy/mixin/alerts.yaml) to the right receiver.

`amtool config routes test --config.file=...` resolves the routing tree offline (no running
Alertmanager) and prints the receiver names, one line each. Without amtool these tests skip,
except under CI=true, where a missing amtool is a failure.
"""

from __future__ import annotations

import pytest

from deploy.mixin.generate import alert_groups
from tests.unit.conftest import ROOT, run_in_root

CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
RECEIVER_FOR = {"critical": "page", "warning": "ticket"}


def _route(amtool: str, *labels: str) -> list[str]:
    """The receivers amtool resolves for an alert with these `name=value` labels."""
    result = run_in_root(amtool, "config", "routes", "test", f"--config.file={CONFIG}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.split()


def test_amtool_check_config(amtool: str) -> None:
    result = run_in_root(amtool, "check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout, result.stdout
    assert "2 inhibit rules" in result.stdout, result.stdout


@pytest.mark.parametrize(("severity", "receiver"), sorted(RECEIVER_FOR.items()))
def test_budget_burn_routes_by_severity(amtool: str, severity: str, receiver: str) -> None:
    labels = (f"severity={severity}", "alertname=CXFirstResponseBudgetBurn", "channel=chat")
    assert _route(amtool, *labels) == [receiver]


def test_every_mixin_alert_routes_by_its_severity(amtool: str) -> None:
    alerts = [alert for group in alert_groups() for alert in group.alerts]
    assert {alert.severity for alert in alerts} <= set(RECEIVER_FOR)
    for alert in alerts:
        labels = [f"alertname={alert.name}", f"severity={alert.severity}"]
        labels += [f"{name}={value}" for name, value in alert.labels]
        assert _route(amtool, *labels) == [RECEIVER_FOR[alert.severity]], alert


def test_unclassified_alert_falls_back_to_ticket(amtool: str) -> None:
    assert _route(amtool, "alertname=SomethingElse") == ["ticket"]


def test_webhook_urls_are_marked_placeholders() -> None:
    text = CONFIG.read_text(encoding="utf-8")
    for url in ("http://pager.example.internal/hook", "http://tickets.example.internal/hook"):
        line = next(line for line in text.splitlines() if url in line)
        assert "PLACEHOLDER" in line, line
    assert text.count("send_resolved: true") == 2
