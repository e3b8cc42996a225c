"""Grafana's dashboard model as the grafana role's preflight checks it (module_utils/dashboards.py), and the metric
names a PromQL expression reads."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.analytics.platform.plugins.filter.grafana import dashboard_problems
from ansible_collections.analytics.platform.plugins.module_utils.dashboards import (
    dashboard_queries,
    dashboards_problems,
    promql_metric_names,
)

FOLDER = Path(__file__).resolve().parents[3] / "roles" / "grafana" / "files" / "dashboards"
SOURCES = {"platform-prometheus": "prometheus", "analytics-replica": "grafana-postgresql-datasource"}
SHIPPED = {p.name: p.read_text() for p in sorted(FOLDER.glob("*.json"))}


def test_the_shipped_dashboards_follow_the_model():
    assert len(SHIPPED) >= 10
    assert dashboards_problems(SHIPPED, SOURCES) == []


def test_one_dashboard_per_component_and_an_overview():
    tags = [set(json.loads(t)["tags"]) for t in SHIPPED.values()]
    components = ("overview", "api", "nginx", "kafka", "objectstore", "postgresql", "pipelines", "hosts", "monitoring")
    for component in (*components, "events"):
        assert sum(component in t for t in tags) == 1, component


def names_of(tag: str) -> set[str]:
    names: set[str] = set()
    for text in SHIPPED.values():
        if tag in json.loads(text)["tags"]:
            for _title, kind, query in dashboard_queries(text):
                if kind == "prometheus":
                    names |= promql_metric_names(query)
    return names


def base(name: str) -> str:
    for suffix in ("_bucket", "_count", "_sum"):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def test_the_overview_reads_only_metrics_a_component_dashboard_reads():
    """The scenarios check each component dashboard's metric names against what its exporters serve; the overview's
    are covered when each is also some component's."""
    tags = ("api", "nginx", "kafka", "objectstore", "postgresql", "pipelines", "hosts", "monitoring")
    components = set().union(*(names_of(t) for t in tags))
    overview = names_of("overview")
    assert overview
    assert {base(n) for n in overview} <= {base(n) for n in components}


def overview() -> dict:
    return copy.deepcopy(json.loads(SHIPPED["overview.json"]))


def problems_of(dash: dict) -> list[str]:
    return dashboards_problems({"d.json": json.dumps(dash)}, SOURCES)


def mutate(path: str, value):
    def apply(dash):
        *keys, last = path.split(".")
        node = dash
        for key in keys:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is KeyError:
            del node[last]
        else:
            node[int(last) if last.isdigit() else last] = value
        return dash

    return apply


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (mutate("uid", "x" * 41), "d.json: uid must be 1 to 40 letters"),
        (mutate("uid", "has space"), "d.json: uid must be"),
        (mutate("title", ""), "d.json: title must be a non-empty string"),
        (mutate("id", 7), "d.json: id must be null or absent"),
        (mutate("schemaVersion", 27), "schemaVersion must be an integer of 36 or more"),
        (mutate("panels", []), "panels must be a non-empty list"),
        (mutate("time", {"from": "now-6h"}), "time needs from and to"),
        (mutate("refresh", 30), "refresh must be an interval"),
        (mutate("panels.1.id", 1), "panel 1 'Error ratio (5xx share per service)': id 1 is used by another panel"),
        (mutate("panels.1.type", "graph-old"), "type 'graph-old' is not one of Grafana's core panels"),
        (mutate("panels.1.gridPos.x", 20), "gridPos x + w is 32, past the grid's 24 columns"),
        (mutate("panels.1.gridPos.x", 6), "panel 2 'Error ratio (5xx share per service)': gridPos overlaps panel"),
        (mutate("panels.1.gridPos.h", KeyError), "gridPos needs integer h, w, x and y"),
        (mutate("panels.1.gridPos.w", 0), "gridPos h and w must be 1 or more"),
        (mutate("panels.1.datasource", "Prometheus"), 'datasource must be {"type": ..., "uid": ...}'),
        (mutate("panels.1.datasource.uid", "other"), "datasource uid 'other' is not provisioned"),
        (mutate("panels.1.datasource.type", "loki"), "'platform-prometheus' is a prometheus source, not loki"),
        (mutate("panels.1.targets", []), "needs at least one query in targets"),
        (mutate("panels.0.targets.1.refId", "A"), "refId 'A' is used twice in the panel"),
        (mutate("panels.0.targets.1.refId", KeyError), "targets[1]: has no refId"),
        (mutate("panels.0.targets.0.expr", " "), "a prometheus query needs a non-empty 'expr'"),
        (mutate("panels.0.targets.0.expr", 'rate(x{zone=~"$zone"}[5m])'), "uses $zone, which no dashboard variable"),
        (mutate("panels.0.fieldConfig", []), "fieldConfig must be"),
        (mutate("templating", {"list": [{"name": "zone", "type": "bogus"}]}), "variable 'zone' has type 'bogus'"),
        (mutate("tags", ["ok", 3]), "tags must be strings"),
    ],
)
def test_each_break_of_the_model_is_named(change, message):
    problems = problems_of(change(overview()))
    assert any(message in p for p in problems), problems


def test_a_defined_variable_and_grafanas_own_are_accepted():
    dash = overview()
    dash["templating"]["list"] = [{"name": "zone", "type": "query"}]
    dash["panels"][0]["targets"][0]["expr"] = 'sum(rate(x{zone=~"${zone:regex}"}[$__rate_interval]))'
    dash["panels"][0]["datasource"] = {"type": "prometheus", "uid": "${source}"}
    assert any("datasource uid ${source} names no dashboard variable" in p for p in problems_of(dash))
    dash["templating"]["list"].append({"name": "source", "type": "datasource"})
    assert problems_of(dash) == []


def test_rows_hold_their_panels_only_when_collapsed_and_cannot_nest():
    dash = overview()
    inner = dash["panels"].pop()
    dash["panels"].append(
        {
            "id": 20,
            "type": "row",
            "title": "More",
            "collapsed": True,
            "panels": [inner],
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": 40},
        }
    )
    assert problems_of(dash) == []
    dash["panels"][-1]["collapsed"] = False
    assert any("an expanded row keeps its panels" in p for p in problems_of(dash))
    dash["panels"][-1]["collapsed"] = True
    dash["panels"][-1]["panels"][0]["id"] = 1
    assert any("id 1 is used by another panel" in p for p in problems_of(dash))


def test_sql_panels_need_raw_sql_and_a_known_format():
    events = json.loads(SHIPPED["events.json"])
    events["panels"][0]["targets"][0]["format"] = "logs"
    del events["panels"][1]["targets"][0]["rawSql"]
    problems = problems_of(events)
    assert any("format must be time_series or table" in p for p in problems)
    assert any("needs a non-empty 'rawSql'" in p for p in problems)


def test_two_files_with_one_uid_or_title_are_named():
    text = SHIPPED["overview.json"]
    problems = dashboards_problems({"a.json": text, "b.json": text}, SOURCES)
    assert "b.json: uid 'ap-overview' is also the uid of a.json" in problems
    assert "b.json: title 'Analytics platform: overview' is also the title of a.json" in problems


def test_not_json_or_not_an_object_is_one_line():
    assert dashboards_problems({"x.json": "{nope"}, SOURCES)[0].startswith("x.json: not JSON")
    assert dashboards_problems({"x.json": "[1]"}, SOURCES) == ["x.json: a dashboard is a JSON object"]


def test_the_filter_reads_the_files_and_names_bad_arguments(tmp_path):
    (tmp_path / "ok.json").write_text(SHIPPED["overview.json"])
    assert dashboard_problems([str(tmp_path / "ok.json")], SOURCES) == []
    only_sql = {"analytics-replica": SOURCES["analytics-replica"]}
    problems = dashboard_problems([str(tmp_path / "ok.json")], only_sql)
    assert any("'platform-prometheus' is not provisioned" in p for p in problems)
    with pytest.raises(AnsibleFilterError, match="cannot read"):
        dashboard_problems([str(tmp_path / "missing.json")], SOURCES)
    with pytest.raises(AnsibleFilterError, match="sources must be a mapping"):
        dashboard_problems([], ["prometheus"])


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("sum(rate(http_requests_total[5m]))", {"http_requests_total"}),
        ('sum by (job) (rate(a_total{status=~"5.."}[5m])) / sum by (job) (rate(a_total[5m]))', {"a_total"}),
        ('histogram_quantile(0.99, sum by (le) (rate(x_bucket{path=~"/a.*"}[$__rate_interval])))', {"x_bucket"}),
        ("min by (instance) ((ap_cert_seconds - time()) / 86400)", {"ap_cert_seconds"}),
        ("a / ignoring(path) group_left b", {"a", "b"}),
        ('up{job="node"} == 0 and on (instance) pg_up offset 5m', {"up", "pg_up"}),
        ('{__name__="node_load1"}', {"node_load1"}),
        ('label_replace(m, "dst", "$1", "src", "(.*)") > bool 1e3', {"m"}),
        ('count(x{zone=~"$zone"}) without (zone) unless y', {"x", "y"}),
        ("sum(rate(x[5m:1m]))", {"x"}),
    ],
)
def test_metric_names_of_an_expression(expr, names):
    assert promql_metric_names(expr) == names
