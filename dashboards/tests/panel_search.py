"""Run a Lens panel of the Flock dashboards as Kibana would: one Elasticsearch ``_search``
built from the saved object alone, and the table of rows the panel shows.

One translator for every panel (never a query written by hand per panel):

* index: the title of the panel's data view (its layer's ``index-pattern`` reference),
  written with the test's index prefix instead of ``flock``;
* time: when the data view has a time field, a ``range`` on it from the panel's own time
  range (``embeddableConfig.timeRange``) or else the dashboard's (``timeFrom``/``timeTo``,
  restored with the dashboard), as Elasticsearch date math (``now-24h``): the same instants
  Kibana computes, give or take the moment ``now`` is taken. A data view without a time field
  ignores the time picker, in Kibana and here;
* query: the Lens state's KQL and the dashboard's (``kql.py``: the subset the panels use,
  or an error);
* filters: each enabled filter's stored ``query`` (what Kibana sends), the panel's and the
  dashboard's, in ``bool.filter``, or ``bool.must_not`` when negated;
* aggregations: the layer's bucket columns in ``columnOrder``, nested (``terms`` with its
  size, order and missing bucket; ``date_histogram``), and at every level the metric columns
  (``count``, ``unique_count`` -> ``cardinality``, ``last_value`` -> ``top_hits`` of the
  newest document having the field, ``min``/``max``, ``sum``/``average``), each inside a
  ``filter`` aggregation when the column has its own KQL filter (Lens' filtered metrics).

What Kibana does and this module does not: the ``auto`` interval of a date histogram (here
one bucket per ``fixed_interval`` of about 1/50 of the range: a different bucket width, the
same documents and totals); number and date formatting. A column type outside the list above
raises :class:`Unsupported` so the test says the panel cannot be checked, never passes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from dashboards.tests.kql import KqlUnsupported, to_es_query

RECORDS = "___records___"
MISSING = "__missing__"  # the key Lens gives a terms column's "missing values" bucket


class Unsupported(ValueError):
    """The panel uses something this translator does not run outside Kibana."""


@dataclass(frozen=True)
class Panel:
    """One panel as it sits on a dashboard."""

    dashboard: str
    vis: dict[str, Any]
    time_range: dict[str, str]
    # the dashboard's own query and filters, which Kibana applies to every panel
    search_source: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PanelSearch:
    index: str
    body: dict[str, Any]
    buckets: list[tuple[str, dict[str, Any]]]  # (column id, column), outermost first
    metrics: list[tuple[str, dict[str, Any]]]


def panels(objects: list[dict[str, Any]]) -> list[Panel]:
    """Every Lens panel of every dashboard of the saved objects, with its time range."""
    by_ref = {(o["type"], o["id"]): o for o in objects}
    out = []
    for dash in (o for o in objects if o["type"] == "dashboard"):
        attrs = dash["attributes"]
        refs = {r["name"]: r for r in dash["references"]}
        dash_range = {"from": attrs.get("timeFrom", "now-15m"), "to": attrs.get("timeTo", "now")}
        search_source = json.loads(
            attrs.get("kibanaSavedObjectMeta", {}).get("searchSourceJSON", "{}")
        )
        for panel in json.loads(attrs["panelsJSON"]):
            ref = refs[f"{panel['panelIndex']}:{panel['panelRefName']}"]
            vis = by_ref[(ref["type"], ref["id"])]
            time_range = panel.get("embeddableConfig", {}).get("timeRange") or dash_range
            out.append(Panel(attrs["title"], vis, time_range, search_source))
    return out


def data_view_of(vis: dict[str, Any], objects: list[dict[str, Any]]) -> dict[str, Any]:
    (layer_id,) = vis["attributes"]["state"]["datasourceStates"]["formBased"]["layers"]
    ref_name = f"indexpattern-datasource-layer-{layer_id}"
    (ref,) = [r for r in vis["references"] if r["name"] == ref_name]
    (view,) = [o for o in objects if o["type"] == "index-pattern" and o["id"] == ref["id"]]
    return view


def _kql(text: str) -> dict[str, Any]:
    try:
        return to_es_query(text)
    except KqlUnsupported as exc:
        raise Unsupported(str(exc)) from exc


def _filter_query(flt: dict[str, Any]) -> dict[str, Any]:
    meta = flt.get("meta", {})
    query = flt.get("query")
    if not query or meta.get("type") not in {"phrase", "phrases", "range", "exists", "custom"}:
        raise Unsupported(f"filter of type {meta.get('type')!r} without a stored query")
    return query


def _metric_agg(col: dict[str, Any]) -> dict[str, Any]:
    op, field = col["operationType"], col.get("sourceField")
    if op == "count":
        return {}  # the bucket's doc_count
    if op == "unique_count":
        return {"cardinality": {"field": field}}
    if op == "last_value":
        sort_field = col["params"]["sortField"]
        return {
            "filter": {"exists": {"field": field}},
            "aggs": {
                "top": {
                    "top_hits": {
                        "size": 1,
                        "sort": [{sort_field: {"order": "desc"}}],
                        "fields": [field],
                        "_source": False,
                    }
                }
            },
        }
    simple = {"min": "min", "max": "max", "sum": "sum", "average": "avg"}
    if op in simple:
        return {simple[op]: {"field": field}}
    raise Unsupported(f"Lens operation {op!r} is not translated")


def _metric_aggs(metrics: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Aggregations for the metric columns: ``<id>`` holds the value, ``<id>-filter`` wraps
    it in the column's own KQL filter."""
    aggs = {}
    for cid, col in metrics:
        inner = _metric_agg(col)
        kql = col.get("filter", {}).get("query")
        if kql:
            aggs[f"{cid}-filter"] = {
                "filter": _kql(kql),
                **({"aggs": {cid: inner}} if inner else {}),
            }
        elif inner:
            aggs[cid] = inner
    return aggs


def _order_path(cid: str, col: dict[str, Any]) -> str:
    """The bucket path a terms aggregation orders by for metric column ``cid``."""
    filtered = bool(col.get("filter", {}).get("query"))
    if col["operationType"] == "count":
        return f"{cid}-filter>_count" if filtered else "_count"
    if col["operationType"] == "last_value":
        raise Unsupported("ordering by a last value column is not translated")
    return f"{cid}-filter>{cid}" if filtered else cid


def _interval(time_range: dict[str, str]) -> str:
    """About 50 buckets over the range (Kibana's histogram:barTarget), in whole units."""
    span = _seconds(time_range["from"]) - _seconds(time_range["to"])
    for secs, text in (
        (60, "1m"),
        (300, "5m"),
        (600, "10m"),
        (1800, "30m"),
        (3600, "1h"),
        (3 * 3600, "3h"),
        (12 * 3600, "12h"),
        (86400, "1d"),
        (7 * 86400, "7d"),
    ):
        if span / secs <= 100:
            return text
    return "30d"


def _seconds(expr: str) -> int:
    """Seconds before now of ``now`` or ``now-<n><unit>``."""
    if expr == "now":
        return 0
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "M": 30 * 86400}
    if not expr.startswith("now-") or expr[-1] not in units:
        raise Unsupported(f"time {expr!r} is not translated")
    return int(expr[4:-1]) * units[expr[-1]]


def _bucket_agg(col: dict[str, Any], metrics, time_range) -> dict[str, Any]:
    op = col["operationType"]
    if op == "terms":
        params = col["params"]
        if params.get("otherBucket"):
            raise Unsupported("the 'other' bucket is not translated")
        if params.get("include") or params.get("exclude"):
            raise Unsupported("include/exclude of terms is not translated")
        terms: dict[str, Any] = {"field": col["sourceField"], "size": params["size"]}
        order = params["orderBy"]
        direction = params.get("orderDirection", "desc")
        if order["type"] == "alphabetical":
            terms["order"] = {"_key": direction}
        elif order["type"] == "column":
            (mcid, mcol) = next((c, m) for c, m in metrics if c == order["columnId"])
            terms["order"] = [{_order_path(mcid, mcol): direction}, {"_key": "asc"}]
        else:
            raise Unsupported(f"terms order {order['type']!r} is not translated")
        if params.get("missingBucket"):
            terms["missing"] = MISSING
        return {"terms": terms}
    if op == "date_histogram":
        if time_range is None:
            raise Unsupported("a date histogram over a data view without a time field")
        histogram = {
            "field": col["sourceField"],
            "fixed_interval": _interval(time_range),
            "min_doc_count": 0 if col["params"].get("includeEmptyRows") else 1,
        }
        return {"date_histogram": histogram}
    raise Unsupported(f"Lens bucket operation {op!r} is not translated")


def build(panel: Panel, objects: list[dict[str, Any]], prefix: str) -> PanelSearch:
    """The ``_search`` (index and body) the panel's saved object defines."""
    vis = panel.vis
    state = vis["attributes"]["state"]
    if vis["attributes"].get("visualizationType") not in {
        "lnsDatatable",
        "lnsPie",
        "lnsMetric",
        "lnsXY",
    }:
        raise Unsupported(f"visualization {vis['attributes'].get('visualizationType')!r}")
    layers = state["datasourceStates"]["formBased"]["layers"]
    if len(layers) != 1:
        raise Unsupported("more than one layer")
    (layer,) = layers.values()
    if layer.get("sampling", 1) != 1:
        raise Unsupported("a sampled layer (random_sampler) is not translated")
    view = data_view_of(vis, objects)["attributes"]
    index = ",".join(
        prefix + p[len("flock") :] if p.startswith("flock") else p for p in view["title"].split(",")
    )

    clauses: list[dict[str, Any]] = []
    must_not: list[dict[str, Any]] = []
    time_field = view.get("timeFieldName")
    time_range = panel.time_range if time_field else None
    if time_range:
        clauses.append(
            {"range": {time_field: {"gte": time_range["from"], "lte": time_range["to"]}}}
        )
    # the panel's query and filters, and the dashboard's (unless the layer ignores them)
    sources = [state]
    if not layer.get("ignoreGlobalFilters"):
        sources.append(panel.search_source)
    for source in sources:
        query = source.get("query") or {}
        if query.get("language", "kuery") != "kuery":
            raise Unsupported("only KQL queries are translated")
        if str(query.get("query", "")).strip():
            clauses.append(_kql(query["query"]))
        for flt in source.get("filter", source.get("filters", [])):
            if flt.get("meta", {}).get("disabled"):
                continue
            (must_not if flt["meta"].get("negate") else clauses).append(_filter_query(flt))

    columns = layer["columns"]
    order = layer["columnOrder"]
    buckets = [(cid, columns[cid]) for cid in order if columns[cid]["isBucketed"]]
    metrics = [(cid, columns[cid]) for cid in order if not columns[cid]["isBucketed"]]
    # the metrics at every level: a terms column orders its buckets by one of them
    level_metrics = _metric_aggs(metrics)
    aggs: dict[str, Any] = dict(level_metrics)
    for cid, col in reversed(buckets):
        agg = _bucket_agg(col, metrics, time_range)
        if aggs:
            agg["aggs"] = aggs
        aggs = {cid: agg, **level_metrics}
    body = {
        "size": 0,
        "track_total_hits": True,
        "query": {"bool": {"filter": clauses, "must_not": must_not}},
        "aggs": aggs,
    }
    return PanelSearch(index, body, buckets, metrics)


def _metric_value(node: dict[str, Any], cid: str, col: dict[str, Any]) -> Any:
    if col.get("filter", {}).get("query"):
        node = node[f"{cid}-filter"]
        if col["operationType"] == "count":
            return node["doc_count"]
    elif col["operationType"] == "count":
        return node["doc_count"]
    agg = node[cid]
    if col["operationType"] == "last_value":
        hits = agg["top"]["hits"]["hits"]
        return hits[0]["fields"][col["sourceField"]][0] if hits else None
    return agg.get("value_as_string", agg.get("value"))


def rows(search: PanelSearch, response: dict[str, Any]) -> list[dict[str, Any]]:
    """The panel's table: one dict per leaf bucket (column id -> value), in ES' order; a
    panel without buckets has one row over all matching documents."""
    out: list[dict[str, Any]] = []

    def walk(node: dict[str, Any], depth: int, prefix: dict[str, Any]) -> None:
        if depth == len(search.buckets):
            row = dict(prefix)
            for cid, col in search.metrics:
                row[cid] = _metric_value(node, cid, col)
            out.append(row)
            return
        cid, col = search.buckets[depth]
        for bucket in node[cid]["buckets"]:
            key = bucket.get("key_as_string", bucket["key"])
            walk(bucket, depth + 1, {**prefix, cid: None if key == MISSING else key})

    top = {"doc_count": response["hits"]["total"]["value"], **response.get("aggregations", {})}
    walk(top, 0, {})
    return out


def run(es: Any, panel: Panel, objects: list[dict[str, Any]], prefix: str) -> list[dict]:
    search = build(panel, objects, prefix)
    response = es.search(index=search.index, allow_no_indices=True, **search.body)
    return rows(search, dict(response))
