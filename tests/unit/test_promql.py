"""deploy/promql.py: alert expressions without their thresholds, Grafana variables substituted."""

from __future__ import annotations

import pytest

from deploy.promql import substitute_variables, threshold_free, unresolved_variables


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (
            "channel:r:ratio_rate1h > 0.72\nand\nchannel:r:ratio_rate5m > 0.72",
            "channel:r:ratio_rate1h > bool 0.72\nand\nchannel:r:ratio_rate5m > bool 0.72",
        ),
        ('up{job="cxpulse"} == 0', 'up{job="cxpulse"} == bool 0'),
        (
            'a{x!="y", z=~"a|b"} >= 30 unless b[5m] < c - 20',
            'a{x!="y", z=~"a|b"} >= bool 30 and b[5m] < bool c - 20',
        ),
        ("x > bool 1", "x > bool 1"),
        (
            'label_replace(x, "d", "$1>", "s", "(.*)") != 1',
            'label_replace(x, "d", "$1>", "s", "(.*)") != bool 1',
        ),
        ("sum without (unlessish) (x) <= 2", "sum without (unlessish) (x) <= bool 2"),
    ],
)
def test_threshold_free(expr: str, expected: str) -> None:
    assert threshold_free(expr) == expected


def test_threshold_free_rejects_an_unterminated_string() -> None:
    with pytest.raises(ValueError, match="unterminated"):
        threshold_free('x{a="b} > 1')


def test_substitute_variables_turns_equality_on_a_variable_into_a_regex() -> None:
    expr = (
        'sum(rate(x{channel=~"$channel", instance="${instance}", t!="[[t]]"}[$__rate_interval]))'
        " / $__range_s"
    )
    values = {
        "channel": ".*",
        "instance": ".*",
        "t": "a",
        "__rate_interval": "1m",
        "__range_s": "60",
    }
    assert substitute_variables(expr, values) == (
        'sum(rate(x{channel=~".*", instance=~".*", t!~"a"}[1m])) / 60'
    )


def test_unknown_variables_stay_and_are_reported() -> None:
    expr = substitute_variables('label_replace(x{a="$b"}, "c", "$1", "d", "(.*)") + $__foo', {})
    assert expr == 'label_replace(x{a=~"$b"}, "c", "$1", "d", "(.*)") + $__foo'
    assert unresolved_variables(expr) == ["$b", "$__foo"]
