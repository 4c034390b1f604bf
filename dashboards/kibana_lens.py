"""Kibana 8 Lens building blocks: columns, filters, and by-reference Lens objects over the
Flock data views.

Two data views: the results (every row ever received, by ``@timestamp``: history) and the
current state (one document per row present now or removed, and one per host; no time
field, so the dashboard's time picker never hides a host whose state has not changed).
"""

from __future__ import annotations

from flock_gateway.fields import (
    COLUMNS,
    KIND,
    LAST_SEEN,
    NAME,
    OS_VERSION,
    PLATFORM,
    PRESENT,
    QUERY_NAME,
    STATE_HOST,
    STATE_ROW,
    TIMESTAMP,
    USERNAME,
    client_field,
    gateway_field,
)

# Versions Kibana 8.x itself writes in exports; Kibana migrates newer on import.
CORE_MIGRATION_VERSION = "8.8.0"
TYPE_MIGRATION_VERSION = {"index-pattern": "8.0.0", "lens": "8.9.0", "dashboard": "8.9.0"}

DATA_VIEW_ID = "flock-results"
STATE_VIEW_ID = "flock-state"
TIME_FIELD = TIMESTAMP

# Hosts are counted by the identity the gateway authenticated, never by a field the laptop
# sent; what the laptop sent is under data.*.
HOST = gateway_field(USERNAME)
AGENT_NAME = gateway_field(NAME)
QUERY = client_field(QUERY_NAME)
# The gateway's fields of the current state: the host's platform family (osquery's words:
# darwin, linux, windows) and OS version, known from its own os_version rows; what a state
# document is (an osquery row, or a host); whether the row is there now; when the host last
# sent results.
PLATFORM_FIELD = gateway_field(PLATFORM)
OS_VERSION_FIELD = gateway_field(OS_VERSION)
KIND_FIELD = gateway_field(KIND)
LAST_SEEN_FIELD = gateway_field(LAST_SEEN)
# What "now" panels count: rows present now (a removed row stays as a tombstone).
ROWS_NOW = f"{KIND_FIELD} : {STATE_ROW} and {gateway_field(PRESENT)} : true"
HOST_DOCS = f"{KIND_FIELD} : {STATE_HOST}"


def result_column(name):
    """The stored field of an osquery result column, e.g. ``data.columns.version``."""
    return client_field(f"{COLUMNS}.{name}")


RECORDS = "___records___"  # Lens' pseudo field for "count of records"


def terms(field, label, size=10, order_by=None, direction="desc", missing=False):
    """A "top values" bucket column; ordered by a metric column id or alphabetically."""
    if order_by is None:
        order = {"type": "alphabetical", "fallback": False}
        direction = "asc"
    else:
        order = {"type": "column", "columnId": order_by}
    return {
        "label": label,
        "customLabel": True,
        "dataType": "string",
        "operationType": "terms",
        "sourceField": field,
        "isBucketed": True,
        "scale": "ordinal",
        "params": {
            "size": size,
            "orderBy": order,
            "orderDirection": direction,
            "otherBucket": False,
            "missingBucket": missing,
            "parentFormat": {"id": "terms"},
            "include": [],
            "exclude": [],
            "includeIsRegex": False,
            "excludeIsRegex": False,
        },
    }


def _number(operation, field, label, kql=None):
    """A number column, counting only the rows matching ``kql`` when it is given."""
    col = {
        "label": label,
        "customLabel": True,
        "dataType": "number",
        "operationType": operation,
        "sourceField": field,
        "isBucketed": False,
        "scale": "ratio",
        "params": {"emptyAsNull": False},
    }
    if kql:
        col["filter"] = {"query": kql, "language": "kuery"}
    return col


def unique_count(field, label, kql=None):
    return _number("unique_count", field, label, kql)


def hosts(label="Hosts", kql=None):
    """Distinct hosts: the unit every Flock panel counts in."""
    return unique_count(HOST, label, kql)


def count(label, kql=None):
    return _number("count", RECORDS, label, kql)


def last_seen(label="Last reported", field=TIME_FIELD):
    """The latest value of a date field (the row's time, or a host's last report)."""
    return {
        "label": label,
        "customLabel": True,
        "dataType": "date",
        "operationType": "last_value",
        "sourceField": field,
        "isBucketed": False,
        "scale": "ratio",
        "params": {"sortField": field, "showArrayValues": False},
    }


def date_histogram(label="Time"):
    return {
        "label": label,
        "customLabel": True,
        "dataType": "date",
        "operationType": "date_histogram",
        "sourceField": TIME_FIELD,
        "isBucketed": True,
        "scale": "interval",
        "params": {"interval": "auto", "includeEmptyRows": True, "dropPartials": False},
    }


def phrase(field, value, negate=False):
    """A pinned-to-the-panel phrase filter (what "field: value" in the filter bar saves)."""
    return {"field": field, "value": value, "negate": negate}


def query_is(name):
    return phrase(QUERY, name)


def platform_is(platform):
    """Rows of hosts of one platform family (``flock.platform``, set by the gateway)."""
    return phrase(PLATFORM_FIELD, platform)


def _filters_and_refs(filters, data_view):
    out, refs = [], []
    for i, f in enumerate(filters):
        ref_name = f"filter-index-pattern-{i}"
        refs.append({"type": "index-pattern", "id": data_view, "name": ref_name})
        out.append(
            {
                "meta": {
                    "alias": None,
                    "negate": f["negate"],
                    "disabled": False,
                    "type": "phrase",
                    "key": f["field"],
                    "params": {"query": f["value"]},
                    "indexRefName": ref_name,
                },
                "query": {"match_phrase": {f["field"]: f["value"]}},
                "$state": {"store": "appState"},
            }
        )
    return out, refs


def lens(vis_id, title, description, vis_type, columns, visualization, filters, source=None):
    """A by-reference Lens object with one form-based layer named "layer1".

    ``columns`` is an ordered list of (column id, column); the order is the
    layer's columnOrder (buckets first, as Lens keeps it). ``source`` is (data view id, KQL
    query): the results and no query unless given.
    """
    data_view, kql = source or (DATA_VIEW_ID, "")
    layer_id = "layer1"
    filter_objs, filter_refs = _filters_and_refs(filters, data_view)
    state = {
        "datasourceStates": {
            "formBased": {
                "layers": {
                    layer_id: {
                        "columnOrder": [cid for cid, _ in columns],
                        "columns": dict(columns),
                        "incompleteColumns": {},
                        "sampling": 1,
                        "ignoreGlobalFilters": False,
                    }
                }
            },
            "indexpattern": {"layers": {}},
            "textBased": {"layers": {}},
        },
        "visualization": visualization(layer_id),
        "query": {"query": kql, "language": "kuery"},
        "filters": filter_objs,
        "internalReferences": [],
        "adHocDataViews": {},
    }
    return {
        "id": vis_id,
        "type": "lens",
        "attributes": {
            "title": title,
            "description": description,
            "visualizationType": vis_type,
            "state": state,
        },
        "references": [
            {
                "type": "index-pattern",
                "id": data_view,
                "name": f"indexpattern-datasource-layer-{layer_id}",
            },
            *filter_refs,
        ],
        "coreMigrationVersion": CORE_MIGRATION_VERSION,
        "typeMigrationVersion": TYPE_MIGRATION_VERSION["lens"],
        "managed": False,
    }


def table(vis_id, title, description, rows, metrics, filters, sort=None, source=None):
    """Datatable: ``rows`` = [(id, bucket column)], ``metrics`` = [(id, metric column)]."""
    columns = [*rows, *metrics]

    def vis(layer_id):
        v = {
            "layerId": layer_id,
            "layerType": "data",
            "columns": [{"columnId": cid, "isTransposed": False} for cid, _ in columns],
            "rowHeight": "single",
            "headerRowHeight": "single",
        }
        if sort:
            v["sorting"] = {"columnId": sort[0], "direction": sort[1]}
        return v

    return lens(vis_id, title, description, "lnsDatatable", columns, vis, filters, source)


def donut(vis_id, title, description, groups, metric, filters, source=None):
    """Donut: ``groups`` = [(id, bucket column)] (outer rings last), ``metric`` = (id, column)."""
    columns = [*groups, metric]

    def vis(layer_id):
        return {
            "shape": "donut",
            "layers": [
                {
                    "layerId": layer_id,
                    "layerType": "data",
                    "primaryGroups": [cid for cid, _ in groups],
                    "metrics": [metric[0]],
                    "numberDisplay": "value",
                    "categoryDisplay": "default",
                    "legendDisplay": "default",
                    "nestedLegend": False,
                }
            ],
        }

    return lens(vis_id, title, description, "lnsPie", columns, vis, filters, source)


def metric(vis_id, title, description, value, filters, source=None):
    """Single number (the 8.x metric visualization)."""

    def vis(layer_id):
        return {"layerId": layer_id, "layerType": "data", "metricAccessor": value[0]}

    return lens(vis_id, title, description, "lnsMetric", [value], vis, filters, source)


def bars_over_time(vis_id, title, description, split, value, filters, source=None):
    """Stacked bars over @timestamp, split by ``split`` = (id, bucket column)."""
    x = ("time", date_histogram())
    columns = [x, split, value]

    def vis(layer_id):
        return {
            "legend": {"isVisible": True, "position": "right"},
            "valueLabels": "hide",
            "fittingFunction": "None",
            "preferredSeriesType": "bar_stacked",
            "layers": [
                {
                    "layerId": layer_id,
                    "layerType": "data",
                    "seriesType": "bar_stacked",
                    "xAccessor": x[0],
                    "splitAccessor": split[0],
                    "accessors": [value[0]],
                }
            ],
        }

    return lens(vis_id, title, description, "lnsXY", columns, vis, filters, source)


# Where panels read: the current state's present rows, its host documents, or the results.
NOW = (STATE_VIEW_ID, ROWS_NOW)
HOSTS_NOW = (STATE_VIEW_ID, HOST_DOCS)
HISTORY = (DATA_VIEW_ID, "")
