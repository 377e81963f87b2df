"""Every PromQL expression in deploy/ is parsed by Prometheus's own parser: the Grafana
dashboard's queries (Grafana's variables substituted first, as Grafana does before it sends a
query) and the alert rules file, validated as Prometheus loads it (expressions, durations, label
and annotation templates: what `promtool check rules` checks). The parser is Prometheus's Go
code, built from tests/deploy/promql with the machine's Go (tests/deploy/toolchain.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import PromQL
from tests.deploy.test_observability import ALERTS, DASHBOARD, dashboard_queries

# Grafana's built-in variables, with values of the kind Grafana puts there.
GRAFANA_BUILTINS = {"__rate_interval": "4m", "__interval": "1m", "__interval_ms": "60000",
                    "__range": "1h", "__range_s": "3600", "__range_ms": "3600000"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*\w+\s*\)\s*$", re.S)
_QUERY_RESULT = re.compile(r"^\s*query_result\((.*)\)\s*$", re.S)


def dashboard_variables() -> dict[str, str]:
    """A value for each of the dashboard's own variables, as Grafana would substitute it."""
    values: dict[str, str] = {}
    for var in json.loads(DASHBOARD.read_text())["templating"]["list"]:
        if var["type"] == "interval":
            values[var["name"]] = str(var["query"]).split(",")[0].strip()
        else:  # a multi-value or "All" selection is substituted as a regex alternation
            values[var["name"]] = var.get("allValue") or "some-value"
    return values


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """``expr`` as Grafana sends it to Prometheus; an unknown variable fails the test."""
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name in GRAFANA_BUILTINS:
            return GRAFANA_BUILTINS[name]
        if name not in variables:
            raise AssertionError(f"${name} is neither a Grafana variable nor the dashboard's: {expr}")
        return variables[name]

    return _VARIABLE.sub(value, expr)


def as_promql(query: str) -> str | None:
    """The PromQL in a Grafana query: a variable's ``label_values(selector, label)`` and
    ``query_result(expr)`` are Grafana functions around PromQL."""
    for form in (_LABEL_VALUES, _QUERY_RESULT):
        found = form.match(query)
        if found:
            return found.group(1)
    return None if query.strip().startswith("label_values(") else query


def test_every_dashboard_query_parses(promql: PromQL) -> None:
    variables = dashboard_variables()
    queries = [(where, as_promql(substitute(expr, variables))) for where, expr, _ in dashboard_queries()]
    checked = [(where, expr) for where, expr in queries if expr is not None]
    assert len(checked) >= 20, checked  # every panel's targets and the variables' selectors
    errors, _ = promql.check([expr for _, expr in checked])
    problems = [f"{where}: {error}\n    {expr}" for (where, expr), error in zip(checked, errors, strict=True)
                if error]
    assert not problems, "\n".join(problems)


def test_the_alert_rules_load_as_prometheus_loads_them(promql: PromQL) -> None:
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    assert len(rules) >= 8
    errors, files = promql.check([r["expr"] for r in rules], [ALERTS])
    assert files == {str(ALERTS): []}, files
    assert errors == [""] * len(rules), errors


def test_the_checks_catch_what_is_broken(promql: PromQL, tmp_path: Path) -> None:
    """The parser is not vacuous: a broken expression, a broken rule and an unknown Grafana
    variable each fail."""
    errors, _ = promql.check(["sum(rate(bridge_records_received_total[5m])", "rate(x[$bad])"])
    assert "unclosed left parenthesis" in errors[0] and errors[1], errors
    for key, value, expected in (("expr", "max by (group) (bridge_consumer_lag > 0", "parse error"),
                                 ("for", "five minutes", "not a valid duration"),
                                 ("annotations", {"summary": "{{ $labels.group "}, "template")):
        broken = tmp_path / f"alerts-{key}.yaml"
        data = yaml.safe_load(ALERTS.read_text())
        data["groups"][0]["rules"][0][key] = value
        broken.write_text(yaml.safe_dump(data))
        _, files = promql.check([], [broken])
        assert any(expected in e for e in files[str(broken)]), files
    with pytest.raises(AssertionError, match=r"\$nope"):
        substitute('sum(rate(x{group=~"$nope"}[$__rate_interval]))', dashboard_variables())
    assert substitute('rate(x{group=~"${group}"}[$__rate_interval])', {"group": ".*"}) == \
        'rate(x{group=~".*"}[4m])'
