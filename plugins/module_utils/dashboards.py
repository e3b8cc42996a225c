# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
"""Grafana dashboards checked against Grafana's dashboard JSON model before they are provisioned (the grafana role's
preflight, the unit tests and the scenarios share this one definition), and the metric names a PromQL expression
reads (the scenarios check them against what the exporters really serve).

Grafana never runs here (AGPL), so nothing else would notice a dashboard it cannot show: a panel off the 24-column
grid or on top of another, a data source uid that is not provisioned, a query without a refId, a variable no one
defines, an id Grafana would clash with. Each problem is one line naming the file, the panel and the field."""

from __future__ import annotations

import json
import re

# Grafana's core panel types (plugins outside this list are not installed by the grafana role).
PANEL_TYPES = frozenset(
    {
        "alertlist",
        "annolist",
        "barchart",
        "bargauge",
        "candlestick",
        "canvas",
        "dashlist",
        "datagrid",
        "flamegraph",
        "gauge",
        "geomap",
        "heatmap",
        "histogram",
        "logs",
        "news",
        "nodeGraph",
        "piechart",
        "row",
        "stat",
        "state-timeline",
        "status-history",
        "table",
        "text",
        "timeseries",
        "traces",
        "trend",
        "xychart",
    }
)
# Panels that show no query results.
NO_QUERY_TYPES = frozenset({"row", "text", "news", "dashlist", "alertlist", "annolist"})
VARIABLE_TYPES = frozenset({"query", "custom", "constant", "datasource", "interval", "textbox", "adhoc", "groupby"})
GRID_COLUMNS = 24
# Grafana 9.0's schema version: data sources are {type, uid} objects from here on (older files are migrated on load,
# and a provisioned dashboard is not saved back, so the migration would run on every load).
MIN_SCHEMA_VERSION = 36
UID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,40}$")
# $name, ${name}, ${name:format}, [[name]]; Grafana's own start with "__" ($__rate_interval, $__timeFilter(...)).
VARIABLE_REF_RE = re.compile(r"\$\{([A-Za-z0-9_]+)(?::[^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)|\[\[([A-Za-z0-9_]+)\]\]")
QUERY_FIELDS = {"prometheus": "expr", "grafana-postgresql-datasource": "rawSql", "postgres": "rawSql"}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _variables(dash: dict, where: str, problems: list[str]) -> set[str]:
    templating = dash.get("templating", {"list": []})
    if not isinstance(templating, dict) or not isinstance(templating.get("list"), list):
        problems.append(f"{where}: templating must be an object with a list")
        return set()
    names = set()
    for i, var in enumerate(templating["list"]):
        name = var.get("name") if isinstance(var, dict) else None
        if not isinstance(name, str) or not name:
            problems.append(f"{where}: templating.list[{i}] has no name")
            continue
        if var.get("type") not in VARIABLE_TYPES:
            kinds = ", ".join(sorted(VARIABLE_TYPES))
            problems.append(f"{where}: variable '{name}' has type {var.get('type')!r}, not one of {kinds}")
        if name in names:
            problems.append(f"{where}: variable '{name}' is defined twice")
        names.add(name)
    return names


def _datasource(ref, where: str, sources: dict[str, str], variables: set[str], problems: list[str]) -> str | None:
    """The type of the data source `ref` names, or None (a problem is recorded, or a variable picks it)."""
    if not isinstance(ref, dict) or not isinstance(ref.get("uid"), str) or not isinstance(ref.get("type"), str):
        problems.append(f'{where}: datasource must be {{"type": ..., "uid": ...}} (schemaVersion 36+), not {ref!r}')
        return None
    uid = ref["uid"]
    m = VARIABLE_REF_RE.fullmatch(uid)
    if m:
        name = next(g for g in m.groups() if g)
        if name not in variables:
            problems.append(f"{where}: datasource uid {uid} names no dashboard variable")
        return None
    if uid not in sources:
        problems.append(
            f"{where}: datasource uid '{uid}' is not provisioned (provisioned: {', '.join(sorted(sources)) or 'none'})"
        )
        return None
    if sources[uid] != ref["type"]:
        problems.append(f"{where}: datasource '{uid}' is a {sources[uid]} source, not {ref['type']}")
    return sources[uid]


def _variable_refs(text: str) -> set[str]:
    return {next(g for g in m.groups() if g) for m in VARIABLE_REF_RE.finditer(text)}


def _targets(panel: dict, where: str, kind: str | None, sources, variables, problems: list[str]) -> None:
    targets = panel.get("targets")
    if not isinstance(targets, list) or not targets:
        problems.append(f"{where}: a {panel.get('type')} panel needs at least one query in targets")
        return
    refs = set()
    for i, target in enumerate(targets):
        tw = f"{where} targets[{i}]"
        if not isinstance(target, dict):
            problems.append(f"{tw}: not an object")
            continue
        ref = target.get("refId")
        if not isinstance(ref, str) or not ref:
            problems.append(f"{tw}: has no refId")
        elif ref in refs:
            problems.append(f"{tw}: refId '{ref}' is used twice in the panel")
        refs.add(ref)
        t_kind = kind
        if "datasource" in target:
            t_kind = _datasource(target["datasource"], tw, sources, variables, problems) or kind
        field = QUERY_FIELDS.get(t_kind or "")
        if field is None:
            continue
        query = target.get(field)
        if not isinstance(query, str) or not query.strip():
            problems.append(f"{tw}: a {t_kind} query needs a non-empty '{field}'")
            continue
        if field == "rawSql" and target.get("format", "time_series") not in ("time_series", "table"):
            problems.append(f"{tw}: format must be time_series or table, not {target.get('format')!r}")
        for name in sorted(_variable_refs(query)):
            if not name.startswith("__") and name not in variables:
                problems.append(f"{tw}: {field} uses ${name}, which no dashboard variable defines")


def _panels(panels, where: str, sources, variables, ids: set[int], problems: list[str], nested: bool = False) -> None:
    boxes = []
    for i, panel in enumerate(panels):
        if not isinstance(panel, dict):
            problems.append(f"{where}: panels[{i}] is not an object")
            continue
        title = panel.get("title")
        pw = f"{where}: panel {panel.get('id', f'#{i}')} '{title}'"
        if not isinstance(title, str):
            problems.append(f"{where}: panels[{i}] has no title")
        pid = panel.get("id")
        if not _is_int(pid) or pid < 1:
            problems.append(f"{pw}: id must be a positive integer")
        elif pid in ids:
            problems.append(f"{pw}: id {pid} is used by another panel")
        else:
            ids.add(pid)
        ptype = panel.get("type")
        if ptype not in PANEL_TYPES:
            problems.append(f"{pw}: type {ptype!r} is not one of Grafana's core panels")
        grid = panel.get("gridPos")
        if not isinstance(grid, dict) or not all(_is_int(grid.get(k)) for k in "hwxy"):
            problems.append(f"{pw}: gridPos needs integer h, w, x and y")
        else:
            h, w, x, y = (grid[k] for k in "hwxy")
            if h < 1 or w < 1 or x < 0 or y < 0:
                problems.append(f"{pw}: gridPos h and w must be 1 or more, x and y 0 or more")
            elif x + w > GRID_COLUMNS:
                problems.append(f"{pw}: gridPos x + w is {x + w}, past the grid's {GRID_COLUMNS} columns")
            else:
                for other_title, (ox, oy, ow, oh) in boxes:
                    if x < ox + ow and ox < x + w and y < oy + oh and oy < y + h:
                        problems.append(f"{pw}: gridPos overlaps panel '{other_title}'")
                boxes.append((title, (x, y, w, h)))
        if ptype == "row":
            if nested:
                problems.append(f"{pw}: a row cannot be inside another row")
            inner = panel.get("panels", [])
            if not isinstance(inner, list):
                problems.append(f"{pw}: a row's panels must be a list")
            elif inner and not panel.get("collapsed"):
                problems.append(f"{pw}: an expanded row keeps its panels in the dashboard's list, not in its own")
            else:
                _panels(inner, where, sources, variables, ids, problems, nested=True)
            continue
        if "fieldConfig" in panel:
            fc = panel["fieldConfig"]
            if (
                not isinstance(fc, dict)
                or not isinstance(fc.get("defaults", {}), dict)
                or not isinstance(fc.get("overrides", []), list)
            ):
                problems.append(f'{pw}: fieldConfig must be {{"defaults": {{...}}, "overrides": [...]}}')
        if ptype in NO_QUERY_TYPES:
            continue
        kind = _datasource(panel.get("datasource"), pw, sources, variables, problems)
        _targets(panel, pw, kind, sources, variables, problems)


def dashboard_problems(name: str, text: str, sources: dict[str, str]) -> list[str]:
    """Every way the dashboard file `name` (its JSON `text`) breaks Grafana's dashboard model or the provisioned data
    sources `sources` ({uid: type}); empty when Grafana can show it as it is."""
    try:
        dash = json.loads(text)
    except ValueError as e:
        return [f"{name}: not JSON ({e})"]
    if not isinstance(dash, dict):
        return [f"{name}: a dashboard is a JSON object"]
    problems: list[str] = []
    if not isinstance(dash.get("title"), str) or not dash["title"].strip():
        problems.append(f"{name}: title must be a non-empty string")
    if not isinstance(dash.get("uid"), str) or not UID_RE.match(dash["uid"]):
        uid = dash.get("uid")
        problems.append(f"{name}: uid must be 1 to 40 letters, digits, '-' or '_' (Grafana's limit), not {uid!r}")
    if dash.get("id") is not None:
        problems.append(f"{name}: id must be null or absent (Grafana assigns it; a fixed id clashes across instances)")
    version = dash.get("schemaVersion")
    if not _is_int(version) or version < MIN_SCHEMA_VERSION:
        problems.append(f"{name}: schemaVersion must be an integer of {MIN_SCHEMA_VERSION} or more, not {version!r}")
    for key, kind in (("tags", list), ("time", dict), ("annotations", dict)):
        if key in dash and not isinstance(dash[key], kind):
            problems.append(f"{name}: {key} must be a{'n object' if kind is dict else ' list'}")
    if isinstance(dash.get("tags"), list) and not all(isinstance(t, str) for t in dash["tags"]):
        problems.append(f"{name}: tags must be strings")
    if isinstance(dash.get("time"), dict) and not all(isinstance(dash["time"].get(k), str) for k in ("from", "to")):
        problems.append(f"{name}: time needs from and to (such as now-6h and now)")
    if "refresh" in dash and not (dash["refresh"] is False or isinstance(dash["refresh"], str)):
        problems.append(f"{name}: refresh must be an interval such as 30s, or false")
    variables = _variables(dash, name, problems)
    panels = dash.get("panels")
    if not isinstance(panels, list) or not panels:
        problems.append(f"{name}: panels must be a non-empty list")
    else:
        _panels(panels, name, sources, variables, set(), problems)
    return problems


def dashboards_problems(files: dict[str, str], sources: dict[str, str]) -> list[str]:
    """dashboard_problems of each file, and uids or titles that two files share (Grafana keeps one of them)."""
    problems: list[str] = []
    seen: dict[tuple[str, str], str] = {}
    for name in sorted(files):
        problems += dashboard_problems(name, files[name], sources)
        try:
            dash = json.loads(files[name])
        except ValueError:
            continue
        for key in ("uid", "title"):
            value = dash.get(key) if isinstance(dash, dict) else None
            if isinstance(value, str):
                if (key, value) in seen:
                    problems.append(f"{name}: {key} '{value}' is also the {key} of {seen[(key, value)]}")
                seen.setdefault((key, value), name)
    return problems


# --- PromQL: the metric names an expression reads ------------------------------------------------------------------

_PROMQL_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless"}
    | {"inf", "nan"}
)
_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING_RE = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME_RE = re.compile(r"(?<![A-Za-z0-9_:.$])([A-Za-z_:][A-Za-z0-9_:]*)(?![A-Za-z0-9_:])")


def promql_metric_names(expr: str) -> set[str]:
    """The metric names `expr` selects (bare names and {__name__="..."} matchers), not its functions, labels or
    keywords. Grafana's $variables count as nothing."""
    names = set(re.findall(r'__name__\s*=\s*"([A-Za-z_:][A-Za-z0-9_:]*)"', expr))
    text = _STRING_RE.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery durations
    text = _GROUPING_RE.sub("", text)
    for m in _NAME_RE.finditer(text):
        word = m.group(1)
        rest = text[m.end() :].lstrip()
        if rest.startswith("(") or word.lower() in _PROMQL_KEYWORDS:
            continue  # a function or aggregation, or a keyword
        names.add(word)
    return names


def dashboard_queries(text: str) -> list[tuple[str, str, str]]:
    """(panel title, datasource type, query) of every query in a dashboard, rows' collapsed panels included."""
    out = []

    def walk(panels, kind=None):
        for panel in panels:
            if panel.get("type") == "row":
                walk(panel.get("panels", []))
                continue
            pkind = (panel.get("datasource") or {}).get("type")
            for target in panel.get("targets", []):
                tkind = (target.get("datasource") or {}).get("type") or pkind
                field = QUERY_FIELDS.get(tkind or "")
                if field and target.get(field):
                    out.append((panel.get("title", ""), tkind, target[field]))

    walk(json.loads(text).get("panels", []))
    return out
