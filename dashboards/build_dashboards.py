#!/usr/bin/env python3
"""Generate ``flock-dashboards.ndjson``: the Flock Kibana 8 saved objects.

Run ``python3 dashboards/build_dashboards.py`` after editing this file; it
rewrites the ndjson beside it. ``--check`` exits 1 if the committed ndjson is
out of date (dashboards/tests/test_dashboards.py does the same check).

What it produces (all ids are stable, so re-imports with ``overwrite=true``
replace the same objects):

* one data view (``index-pattern``) over ``flock-results-*`` with
  ``@timestamp`` as the time field;
* one Lens visualization per panel, by reference to the data view;
* three dashboards: "Flock" (the original project's panels, macOS),
  "Flock - Linux" and "Flock - Fleet overview".

Every panel that looks at osquery results filters on the query ``name`` from
``gateway/src/flock_gateway/data/osquery_schedule.json`` with a phrase filter,
and aggregates only ``columns.<col>``, ``hostIdentifier``, ``flock.name`` or
``@timestamp`` (keyword / date fields in the gateway's ``flock-results`` index
template). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "flock-dashboards.ndjson"

# Versions Kibana 8.x itself writes in exports; Kibana migrates newer on import.
CORE_MIGRATION_VERSION = "8.8.0"
TYPE_MIGRATION_VERSION = {"index-pattern": "8.0.0", "lens": "8.9.0", "dashboard": "8.9.0"}
PANEL_VERSION = "8.9.0"

DATA_VIEW_ID = "flock-results"
DATA_VIEW_PATTERN = "flock-results-*"
TIME_FIELD = "@timestamp"

HOST = "hostIdentifier"
AGENT_NAME = "flock.name"
RECORDS = "___records___"  # Lens' pseudo field for "count of records"


# --------------------------------------------------------------------------
# Lens building blocks
# --------------------------------------------------------------------------


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


def unique_count(field, label, kql=None):
    col = {
        "label": label,
        "customLabel": True,
        "dataType": "number",
        "operationType": "unique_count",
        "sourceField": field,
        "isBucketed": False,
        "scale": "ratio",
        "params": {"emptyAsNull": False},
    }
    if kql:
        col["filter"] = {"query": kql, "language": "kuery"}
    return col


def hosts(label="Hosts", kql=None):
    """Distinct hosts: the unit every Flock panel counts in."""
    return unique_count(HOST, label, kql)


def count(label, kql=None):
    col = {
        "label": label,
        "customLabel": True,
        "dataType": "number",
        "operationType": "count",
        "sourceField": RECORDS,
        "isBucketed": False,
        "scale": "ratio",
        "params": {"emptyAsNull": False},
    }
    if kql:
        col["filter"] = {"query": kql, "language": "kuery"}
    return col


def last_seen(label="Last reported"):
    return {
        "label": label,
        "customLabel": True,
        "dataType": "date",
        "operationType": "last_value",
        "sourceField": TIME_FIELD,
        "isBucketed": False,
        "scale": "ratio",
        "params": {"sortField": TIME_FIELD, "showArrayValues": False},
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
    return phrase("name", name)


NOT_MACOS = phrase("columns.os_platform", "darwin", negate=True)


def _filters_and_refs(filters):
    out, refs = [], []
    for i, f in enumerate(filters):
        ref_name = f"filter-index-pattern-{i}"
        refs.append({"type": "index-pattern", "id": DATA_VIEW_ID, "name": ref_name})
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


def lens(vis_id, title, description, vis_type, columns, visualization, filters):
    """A by-reference Lens object with one form-based layer named "layer1".

    ``columns`` is an ordered list of (column id, column); the order is the
    layer's columnOrder (buckets first, as Lens keeps it).
    """
    layer_id = "layer1"
    filter_objs, filter_refs = _filters_and_refs(filters)
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
        "query": {"query": "", "language": "kuery"},
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
                "id": DATA_VIEW_ID,
                "name": f"indexpattern-datasource-layer-{layer_id}",
            },
            *filter_refs,
        ],
        "coreMigrationVersion": CORE_MIGRATION_VERSION,
        "typeMigrationVersion": TYPE_MIGRATION_VERSION["lens"],
        "managed": False,
    }


def table(vis_id, title, description, rows, metrics, filters, sort=None):
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

    return lens(vis_id, title, description, "lnsDatatable", columns, vis, filters)


def donut(vis_id, title, description, groups, metric, filters):
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

    return lens(vis_id, title, description, "lnsPie", columns, vis, filters)


def metric(vis_id, title, description, value, filters):
    """Single number (the 8.x metric visualization)."""

    def vis(layer_id):
        return {"layerId": layer_id, "layerType": "data", "metricAccessor": value[0]}

    return lens(vis_id, title, description, "lnsMetric", [value], vis, filters)


def bars_over_time(vis_id, title, description, split, value, filters):
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

    return lens(vis_id, title, description, "lnsXY", columns, vis, filters)


# --------------------------------------------------------------------------
# Saved objects
# --------------------------------------------------------------------------


def data_view():
    return {
        "id": DATA_VIEW_ID,
        "type": "index-pattern",
        "attributes": {
            "title": DATA_VIEW_PATTERN,
            "name": "Flock results",
            "timeFieldName": TIME_FIELD,
            "fields": "[]",
            "fieldAttrs": "{}",
            "fieldFormatMap": "{}",
            "runtimeFieldMap": "{}",
            "sourceFilters": "[]",
            "typeMeta": "{}",
            "allowNoIndex": True,
        },
        "references": [],
        "coreMigrationVersion": CORE_MIGRATION_VERSION,
        "typeMigrationVersion": TYPE_MIGRATION_VERSION["index-pattern"],
        "managed": False,
    }


def inventory_table(vis_id, title, query, description, fields):
    """Which items (e.g. extensions) are present, on how many hosts: the most common first."""
    rows = [
        (f"c{i}", terms(f"columns.{col}", label, size=size, order_by="hosts"))
        for i, (col, label, size) in enumerate(fields)
    ]
    return table(
        vis_id,
        title,
        description,
        rows,
        [("hosts", hosts()), ("seen", last_seen())],
        [query_is(query)],
        sort=("hosts", "desc"),
    )


def setting_donut(vis_id, title, query, description, column, label, extra=()):
    """Hosts per value of a single-row security setting (e.g. firewall state)."""
    return donut(
        vis_id,
        title,
        description,
        [("value", terms(f"columns.{column}", label, size=5, order_by="hosts"))],
        ("hosts", hosts()),
        [query_is(query), *extra],
    )


def host_list(vis_id, title, description, filters, extra_rows=()):
    """Hosts matching ``filters`` with their agent name and last report time."""
    rows = [
        ("host", terms(HOST, "Host", size=500)),
        ("agent", terms(AGENT_NAME, "Agent name", size=1, missing=True)),
        *extra_rows,
    ]
    return table(
        vis_id, title, description, rows, [("seen", last_seen())], filters, sort=("seen", "desc")
    )


# Panels of the "Flock" dashboard: (visualization, grid width, grid height).
def flock_panels():
    os_groups = [
        ("os", terms("columns.name", "Operating system", size=5, order_by="hosts")),
        ("version", terms("columns.version", "Version", size=10, order_by="hosts")),
    ]
    return [
        (
            donut(
                "flock-os-versions",
                "[Flock] Operating systems",
                "Distinct hosts per operating system and version (query os_version).",
                os_groups,
                ("hosts", hosts()),
                [query_is("os_version")],
            ),
            24,
            15,
        ),
        (
            host_list(
                "flock-os-versions-table",
                "[Flock] Operating systems table",
                "Each host with its operating system and version (query os_version).",
                [query_is("os_version")],
                extra_rows=[
                    ("os", terms("columns.name", "Operating system", size=1)),
                    ("version", terms("columns.version", "Version", size=1)),
                ],
            ),
            24,
            15,
        ),
        (
            bars_over_time(
                "flock-data-received",
                "[Flock] Data received",
                "Result rows stored over time, split by osquery query name.",
                ("query", terms("name", "Query", size=20, order_by="rows")),
                ("rows", count("Rows")),
                [],
            ),
            48,
            12,
        ),
        (
            inventory_table(
                "flock-installed-applications",
                "[Flock] Installed applications",
                "installed_applications",
                "macOS applications by name and version, with the number of hosts that have them.",
                [
                    ("bundle_name", "Application", 200),
                    ("bundle_short_version", "Version", 10),
                    ("bundle_identifier", "Bundle identifier", 1),
                ],
            ),
            48,
            15,
        ),
        (
            inventory_table(
                "flock-browser-plugins",
                "[Flock] Browser plugins",
                "browser_plugins",
                "NPAPI browser plugins and the number of hosts that have them.",
                [
                    ("name", "Plugin", 100),
                    ("version", "Version", 10),
                    ("identifier", "Identifier", 1),
                ],
            ),
            24,
            15,
        ),
        (
            inventory_table(
                "flock-chrome-extensions",
                "[Flock] Chrome extensions",
                "chrome_extensions",
                "Extensions of Chrome and other Chromium-based browsers (browser_type), by hosts.",
                [
                    ("browser_type", "Browser", 10),
                    ("name", "Extension", 200),
                    ("identifier", "Identifier", 1),
                ],
            ),
            24,
            15,
        ),
        (
            inventory_table(
                "flock-firefox-addons",
                "[Flock] Firefox extensions",
                "firefox_addons",
                "Firefox add-ons by name and identifier, with the number of hosts.",
                [("name", "Add-on", 200), ("identifier", "Identifier", 1), ("type", "Type", 5)],
            ),
            24,
            15,
        ),
        (
            inventory_table(
                "flock-safari-extensions",
                "[Flock] Safari extensions",
                "safari_extensions",
                "Safari extensions by name and identifier, with the number of hosts.",
                [("name", "Extension", 200), ("identifier", "Identifier", 1)],
            ),
            24,
            15,
        ),
        (
            inventory_table(
                "flock-opera-extensions",
                "[Flock] Opera extensions",
                "opera_extensions",
                "Opera extensions by name and identifier, with the number of hosts.",
                [("name", "Extension", 200), ("identifier", "Identifier", 1)],
            ),
            24,
            15,
        ),
        (
            setting_donut(
                "flock-disk-encryption",
                "[Flock] Disk encryption",
                "disk_encryption",
                "Hosts whose system disk is encrypted or not (FileVault / LUKS).",
                "encryption_status",
                "Encryption status",
            ),
            12,
            12,
        ),
        (
            setting_donut(
                "flock-firewall",
                "[Flock] Firewall",
                "alf",
                "macOS application firewall: 0 off, 1 on, 2 blocking all incoming connections.",
                "global_state",
                "Firewall state",
            ),
            12,
            12,
        ),
        (
            setting_donut(
                "flock-gatekeeper",
                "[Flock] Gatekeeper",
                "gatekeeper",
                "Gatekeeper assessments: 1 on, 0 off.",
                "assessments_enabled",
                "Gatekeeper enabled",
            ),
            12,
            12,
        ),
        (
            setting_donut(
                "flock-sip",
                "[Flock] System Integrity Protection",
                "sip",
                "System Integrity Protection: 1 on, 0 off.",
                "enabled",
                "SIP enabled",
            ),
            12,
            12,
        ),
        (
            setting_donut(
                "flock-guest-account",
                "[Flock] Guest account",
                "loginwindow1",
                "GuestEnabled in the login window preferences: 1 means the guest account is on.",
                "value",
                "Guest account enabled",
                extra=(phrase("columns.key", "GuestEnabled"),),
            ),
            12,
            12,
        ),
        (
            table(
                "flock-remote-sharing",
                "[Flock] Remote sharing",
                "Hosts with each macOS sharing service turned on (query sharing_preferences).",
                [],
                [
                    (svc, hosts(label, kql=f'columns.{svc} : "1"'))
                    for svc, label in (
                        ("screen_sharing", "Screen sharing"),
                        ("file_sharing", "File sharing"),
                        ("remote_login", "Remote login (SSH)"),
                        ("remote_management", "Remote management"),
                        ("remote_apple_events", "Remote Apple events"),
                        ("internet_sharing", "Internet sharing"),
                        ("printer_sharing", "Printer sharing"),
                        ("bluetooth_sharing", "Bluetooth sharing"),
                    )
                ],
                [query_is("sharing_preferences")],
            ),
            36,
            8,
        ),
        (
            inventory_table(
                "flock-launch-daemons",
                "[Flock] Launch daemons",
                "launchd",
                "LaunchDaemons and LaunchAgents by label and program, with the number of hosts.",
                [("label", "Label", 200), ("program", "Program", 1), ("path", "plist", 1)],
            ),
            48,
            15,
        ),
        (
            inventory_table(
                "flock-startup-items",
                "[Flock] Startup items",
                "startup_items",
                "Login and startup items by name and path, with the number of hosts.",
                [("name", "Name", 200), ("path", "Path", 1), ("type", "Type", 5)],
            ),
            48,
            15,
        ),
    ]


def linux_panels():
    return [
        (
            donut(
                "flock-linux-os-versions",
                "[Flock Linux] Distributions",
                "Distinct Linux hosts per distribution and version (query os_version).",
                [
                    ("os", terms("columns.name", "Distribution", size=10, order_by="hosts")),
                    ("version", terms("columns.version", "Version", size=10, order_by="hosts")),
                ],
                ("hosts", hosts()),
                [query_is("os_version"), phrase("columns.platform", "darwin", negate=True)],
            ),
            24,
            15,
        ),
        (
            setting_donut(
                "flock-linux-disk-encryption",
                "[Flock Linux] Disk encryption",
                "disk_encryption",
                "Linux hosts whose root file system is on an encrypted (LUKS) device or not.",
                "encryption_status",
                "Encryption status",
                extra=(NOT_MACOS,),
            ),
            24,
            15,
        ),
        (
            table(
                "flock-linux-crontab",
                "[Flock Linux] Cron jobs",
                "Cron jobs (command and crontab file) on Linux hosts, with the number of hosts.",
                [
                    ("command", terms("columns.command", "Command", size=200, order_by="hosts")),
                    ("path", terms("columns.path", "Crontab", size=3, order_by="hosts")),
                ],
                [("hosts", hosts()), ("seen", last_seen())],
                [query_is("crontab"), NOT_MACOS],
                sort=("hosts", "asc"),
            ),
            48,
            15,
        ),
        (
            table(
                "flock-linux-suid-binaries",
                "[Flock Linux] Setuid binaries",
                "Setuid/setgid binaries on Linux hosts; the rare ones (fewest hosts) first.",
                [
                    ("path", terms("columns.path", "Binary", size=500, order_by="hosts")),
                    ("user", terms("columns.username", "Owner", size=3, order_by="hosts")),
                    ("perm", terms("columns.permissions", "Permissions", size=3, order_by="hosts")),
                ],
                [("hosts", hosts()), ("seen", last_seen())],
                [query_is("suid_bin"), NOT_MACOS],
                sort=("hosts", "asc"),
            ),
            48,
            15,
        ),
        (
            table(
                "flock-linux-etc-hosts",
                "[Flock Linux] /etc/hosts entries",
                "Entries of /etc/hosts on Linux hosts; the rare ones (fewest hosts) first.",
                [
                    ("address", terms("columns.address", "Address", size=200, order_by="hosts")),
                    ("names", terms("columns.hostnames", "Host names", size=5, order_by="hosts")),
                ],
                [("hosts", hosts()), ("seen", last_seen())],
                [query_is("etc_hosts"), NOT_MACOS],
                sort=("hosts", "asc"),
            ),
            48,
            15,
        ),
    ]


# Panel-level time ranges override the dashboard's for the fleet overview.
LAST_DAY = {"from": "now-24h", "to": "now"}
LAST_90_DAYS = {"from": "now-90d", "to": "now"}
SILENT_KQL = '@timestamp >= "now-7d"'


def fleet_panels():
    no_disk_encryption = [query_is("disk_encryption"), phrase("columns.encrypted", "0")]
    no_firewall = [query_is("alf"), phrase("columns.global_state", "0")]
    return [
        (
            metric(
                "flock-fleet-hosts-last-day",
                "[Flock fleet] Hosts reporting in the last day",
                "Distinct hosts that sent any result row in the last 24 hours.",
                ("hosts", hosts("Hosts reporting")),
                [],
            ),
            12,
            8,
            LAST_DAY,
        ),
        (
            metric(
                "flock-fleet-no-disk-encryption",
                "[Flock fleet] Hosts without disk encryption",
                "Distinct hosts that reported an unencrypted system disk in the last 24 hours.",
                ("hosts", hosts("Unencrypted hosts")),
                no_disk_encryption,
            ),
            12,
            8,
            LAST_DAY,
        ),
        (
            metric(
                "flock-fleet-no-firewall",
                "[Flock fleet] Hosts without a firewall",
                "macOS hosts that reported the application firewall off in the last 24 hours.",
                ("hosts", hosts("Hosts without firewall")),
                no_firewall,
            ),
            12,
            8,
            LAST_DAY,
        ),
        (
            table(
                "flock-fleet-seen-counts",
                "[Flock fleet] Hosts seen: 90 days vs. 7 days",
                "Hosts seen in the last 90 and the last 7 days; the difference went silent.",
                [],
                [
                    ("h90", hosts("Seen in 90 days")),
                    ("h7", hosts("Seen in 7 days", kql=SILENT_KQL)),
                ],
                [],
            ),
            12,
            8,
            LAST_90_DAYS,
        ),
        (
            table(
                "flock-fleet-silent-hosts",
                "[Flock fleet] Hosts silent for a week",
                "Every host seen in 90 days, least recently seen first: rows in the last 7 days = 0"
                " means silent for a week.",
                [
                    ("host", terms(HOST, "Host", size=1000)),
                    ("agent", terms(AGENT_NAME, "Agent name", size=1, missing=True)),
                ],
                [
                    ("seen", last_seen("Last seen")),
                    ("week", count("Rows in the last 7 days", SILENT_KQL)),
                ],
                [],
                sort=("seen", "asc"),
            ),
            48,
            15,
            LAST_90_DAYS,
        ),
        (
            host_list(
                "flock-fleet-no-disk-encryption-hosts",
                "[Flock fleet] Unencrypted hosts",
                "Hosts that reported an unencrypted system disk in the last 24 hours.",
                no_disk_encryption,
                extra_rows=[("type", terms("columns.name", "Disk", size=3))],
            ),
            24,
            15,
            LAST_DAY,
        ),
        (
            host_list(
                "flock-fleet-no-firewall-hosts",
                "[Flock fleet] Hosts with the firewall off",
                "macOS hosts that reported the application firewall off in the last 24 hours.",
                no_firewall,
            ),
            24,
            15,
            LAST_DAY,
        ),
    ]


def dashboard(dash_id, title, description, panels, time_from="now-7d"):
    """Lay panels out left to right on Kibana's 48-column grid."""
    panel_objs, refs = [], []
    x = y = row_h = 0
    for i, entry in enumerate(panels):
        vis, w, h = entry[:3]
        time_range = entry[3] if len(entry) > 3 else None
        if x + w > 48:
            x, y, row_h = 0, y + row_h, 0
        idx = f"p{i + 1}"
        config = {"enhancements": {}}
        if time_range:
            config["timeRange"] = time_range
        panel_objs.append(
            {
                "type": "lens",
                "version": PANEL_VERSION,
                "gridData": {"x": x, "y": y, "w": w, "h": h, "i": idx},
                "panelIndex": idx,
                "embeddableConfig": config,
                "panelRefName": f"panel_{idx}",
            }
        )
        refs.append({"type": "lens", "id": vis["id"], "name": f"{idx}:panel_{idx}"})
        x, row_h = x + w, max(row_h, h)
    return {
        "id": dash_id,
        "type": "dashboard",
        "attributes": {
            "title": title,
            "description": description,
            "panelsJSON": json.dumps(panel_objs, sort_keys=True, separators=(",", ":")),
            "optionsJSON": json.dumps(
                {
                    "useMargins": True,
                    "syncColors": False,
                    "syncCursor": True,
                    "syncTooltips": False,
                    "hidePanelTitles": False,
                },
                sort_keys=True,
                separators=(",", ":"),
            ),
            "timeRestore": True,
            "timeFrom": time_from,
            "timeTo": "now",
            "refreshInterval": {"pause": True, "value": 60000},
            "kibanaSavedObjectMeta": {
                "searchSourceJSON": json.dumps(
                    {"query": {"query": "", "language": "kuery"}, "filter": []},
                    separators=(",", ":"),
                )
            },
            "version": 1,
        },
        "references": refs,
        "coreMigrationVersion": CORE_MIGRATION_VERSION,
        "typeMigrationVersion": TYPE_MIGRATION_VERSION["dashboard"],
        "managed": False,
    }


def saved_objects():
    """All objects in import order: data view, visualizations, dashboards."""
    boards = [
        (
            "flock",
            "Flock",
            "Fleet posture from the reviewed osquery schedule (macOS panels of "
            "the original Flock dashboard).",
            flock_panels(),
            "now-2d",
        ),
        (
            "flock-linux",
            "Flock - Linux",
            "Linux hosts: disk encryption, cron jobs, setuid binaries and /etc/hosts.",
            linux_panels(),
            "now-2d",
        ),
        (
            "flock-fleet-overview",
            "Flock - Fleet overview",
            "Who reports, who went silent, who lacks disk encryption or a firewall.",
            fleet_panels(),
            "now-24h",
        ),
    ]
    objects = [data_view()]
    dashboards = []
    for dash_id, title, description, panels, time_from in boards:
        objects.extend(entry[0] for entry in panels)
        dashboards.append(dashboard(dash_id, title, description, panels, time_from))
    return objects + dashboards


def render():
    return "".join(
        json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
        for obj in saved_objects()
    )


def markdown():
    """The README's panel table: dashboard, panel, osquery query (and columns) feeding it."""
    by_id = {o["id"]: o for o in saved_objects()}
    lines = ["| Dashboard | Panel | osquery query (`name`) | Fields |", "|---|---|---|---|"]
    for dash in (o for o in by_id.values() if o["type"] == "dashboard"):
        for ref in dash["references"]:
            vis = by_id[ref["id"]]
            state = vis["attributes"]["state"]
            queries = [
                f["meta"]["params"]["query"]
                for f in state["filters"]
                if f["meta"]["key"] == "name" and not f["meta"]["negate"]
            ]
            others = [
                ("NOT " if f["meta"]["negate"] else "")
                + f"{f['meta']['key']}: {f['meta']['params']['query']}"
                for f in state["filters"]
                if f["meta"]["key"] != "name"
            ]
            fields = []
            for col in state["datasourceStates"]["formBased"]["layers"]["layer1"][
                "columns"
            ].values():
                field = col.get("sourceField")
                if field and field != RECORDS and field not in fields:
                    fields.append(field)
                kql_field = col.get("filter", {}).get("query", "").split(" ", 1)[0]
                if kql_field.startswith("columns.") and kql_field not in fields:
                    fields.append(kql_field)
            query = ", ".join(f"`{q}`" for q in queries) or "all queries"
            if others:
                query += " (" + "; ".join(f"`{o}`" for o in others) + ")"
            title = vis["attributes"]["title"]
            lines.append(
                f"| {dash['attributes']['title']} | {title} | {query} | "
                + ", ".join(f"`{f}`" for f in fields)
                + " |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the ndjson is stale")
    parser.add_argument("--markdown", action="store_true", help="print the README panel table")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(), end="")
        return 0
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
