"""PromQL text transformations for running the mixin's alerts and dashboards against a real
Prometheus (the end-to-end tests and `python -m deploy.preview`).

In: PromQL expressions as the mixin renders them (alert expressions, Grafana panel targets).
Out: PromQL that Prometheus can evaluate outside Grafana, or that returns data whenever an
alert's inputs have data:

- :func:`threshold_free` turns every comparison into a ``bool`` comparison and ``unless`` into
  ``and``. An alert expression filters its inputs (``x > 0.72``) and only returns data while it
  fires; the rewritten expression returns a 0/1 sample for every label set where all of its
  inputs have data, so it checks the inputs exist and line up (same labels on both sides of an
  ``and``) without needing an incident.
- :func:`substitute_variables` replaces Grafana's template variables (``$channel``,
  ``$__rate_interval``, ...) with concrete values: "All" (``.*``) for query and custom variables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

_COMPARISONS: Final = ("==", "!=", ">=", "<=", ">", "<")
_WORD: Final = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_VARIABLE: Final = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")
_MATCHER_ON_VARIABLE: Final = re.compile(
    r"""(\w+)\s*(!?)=(?![=~])\s*"((?:\$\{?\w+(?::[^}"]*)?\}?|\[\[\w+\]\]))\""""
)


def threshold_free(expr: str) -> str:
    """``expr`` with every comparison made ``bool`` and every ``unless`` made ``and``.

    Label matchers (inside ``{...}``), strings and range selectors (``[5m]``) are left alone.
    """
    out: list[str] = []
    i, braces, brackets = 0, 0, 0
    while i < len(expr):
        char = expr[i]
        if char in "\"'`":
            end = _string_end(expr, i)
            out.append(expr[i:end])
            i = end
            continue
        if char in "{}[]":
            braces += {"{": 1, "}": -1}.get(char, 0)
            brackets += {"[": 1, "]": -1}.get(char, 0)
            out.append(char)
            i += 1
            continue
        if braces or brackets:
            out.append(char)
            i += 1
            continue
        if char.isalpha() or char in "_:":
            word = _WORD.match(expr, i)
            assert word is not None
            out.append("and" if word[0] == "unless" else word[0])
            i = word.end()
            continue
        operator = next((op for op in _COMPARISONS if expr.startswith(op, i)), None)
        if operator is not None:
            out.append(operator)
            i += len(operator)
            if not re.match(r"\s*bool\b", expr[i:]):
                out.append(" bool")
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _string_end(expr: str, start: int) -> int:
    quote, i = expr[start], start + 1
    while i < len(expr):
        if expr[i] == "\\" and quote != "`":
            i += 2
            continue
        if expr[i] == quote:
            return i + 1
        i += 1
    raise ValueError(f"unterminated string in PromQL: {expr!r}")


def substitute_variables(expr: str, values: Mapping[str, str]) -> str:
    """``expr`` with Grafana's variables replaced by ``values`` (name without ``$``).

    A matcher written with ``=`` or ``!=`` on a variable becomes ``=~`` or ``!~``, as Grafana
    does for a multi-value variable, so a regex value such as ``.*`` means "All". A variable
    without a value is left as it is (``$1`` in a ``label_replace`` is not a variable).
    """

    def regex_matcher(match: re.Match[str]) -> str:
        label, negated, reference = match[1], match[2], match[3]
        return f'{label}{"!~" if negated else "=~"}"{reference}"'

    def value(match: re.Match[str]) -> str:
        name = match[1] or match[2] or match[3]
        return values.get(name, match[0])

    return _VARIABLE.sub(value, _MATCHER_ON_VARIABLE.sub(regex_matcher, expr))


def unresolved_variables(expr: str) -> list[str]:
    """Grafana variable references still in ``expr`` (``$1``-style group references excluded)."""
    return [m[0] for m in _VARIABLE.finditer(expr) if not (m[2] or "").isdigit()]
