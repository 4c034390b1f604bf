#!/usr/bin/env python3
"""Generate ``flock-dashboards.ndjson``: the Flock Kibana 8 saved objects.

Run ``.venv/bin/python dashboards/build_dashboards.py`` after editing this file; it
rewrites the ndjson beside it (any interpreter with the gateway package installed will do:
the sibling modules come from this file's folder, which Python puts on ``sys.path`` for a
script). ``--check`` exits 1 if the committed ndjson is out of date
(dashboards/tests/test_dashboards.py runs that check).

What it produces (all ids are stable, so re-imports with ``overwrite=true``
replace the same objects):

* two data views (``index-pattern``): "Flock results" over ``flock-results-*`` with
  ``@timestamp`` as the time field (history), and "Flock state" over ``flock-state``
  without a time field (what is true now: the time picker does not apply);
* one Lens visualization per panel, by reference to its data view;
* three dashboards: "Flock" (the original project's panels, macOS),
  "Flock - Linux" and "Flock - Fleet overview".

Every panel that looks at osquery rows filters on the query name ``data.name`` from
``gateway/src/flock_gateway/data/osquery_schedule.json`` with a phrase filter (and on the
host's platform, ``flock.platform``, on the macOS and Linux dashboards), and aggregates
only ``data.columns.<col>`` and the gateway's own fields (``flock.*``, ``@timestamp``):
keyword / date fields of the gateway's index templates. Standard library and the gateway
package only.

Layout: ``kibana_lens.py`` builds Lens objects, ``flock_panels.py`` says which panels
each dashboard has, this file makes the saved objects and writes them. The names the
gateway owns (index pattern, ``@timestamp``, ``flock.*``) come from the gateway package.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from flock_gateway.indices import RESULTS, IndexNames
from flock_panels import fleet_panels, flock_panels, linux_panels
from kibana_lens import (
    CORE_MIGRATION_VERSION,
    DATA_VIEW_ID,
    HOST_DOCS,
    QUERY,
    RECORDS,
    STATE_VIEW_ID,
    TIME_FIELD,
    TYPE_MIGRATION_VERSION,
)

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "flock-dashboards.ndjson"
PANEL_VERSION = "8.9.0"
DATA_VIEW_PATTERN = IndexNames().daily_pattern(RESULTS)
STATE_INDEX = IndexNames().state


def data_view(view_id=DATA_VIEW_ID, pattern=DATA_VIEW_PATTERN, name="Flock results"):
    """A data view; the results' has ``@timestamp`` as its time field, the state's none."""
    time_field = {"timeFieldName": TIME_FIELD} if view_id == DATA_VIEW_ID else {}
    return {
        "id": view_id,
        "type": "index-pattern",
        "attributes": {
            "title": pattern,
            "name": name,
            **time_field,
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
            "macOS hosts now: OS versions, software, security settings, sharing and what "
            "starts by itself (the original Flock dashboard's panels); data received over time.",
            flock_panels(),
            "now-2d",
        ),
        (
            "flock-linux",
            "Flock - Linux",
            "Linux hosts now: distributions, disk encryption, cron jobs, setuid binaries and "
            "/etc/hosts.",
            linux_panels(),
            "now-2d",
        ),
        (
            "flock-fleet-overview",
            "Flock - Fleet overview",
            "Every host: who reports, who went silent, who lacks disk encryption or a "
            "firewall now, who had the firewall off in the last day.",
            fleet_panels(),
            "now-24h",
        ),
    ]
    objects = [data_view(), data_view(STATE_VIEW_ID, STATE_INDEX, "Flock state")]
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
    lines = [
        "| Dashboard | Panel | Reads | osquery query (`data.name`) | Fields |",
        "|---|---|---|---|---|",
    ]
    reads = {DATA_VIEW_ID: "history", STATE_VIEW_ID: "now"}
    for dash in (o for o in by_id.values() if o["type"] == "dashboard"):
        for ref in dash["references"]:
            vis = by_id[ref["id"]]
            state = vis["attributes"]["state"]
            queries = [
                f["meta"]["params"]["query"]
                for f in state["filters"]
                if f["meta"]["key"] == QUERY and not f["meta"]["negate"]
            ]
            others = [
                ("NOT " if f["meta"]["negate"] else "")
                + f"{f['meta']['key']}: {f['meta']['params']['query']}"
                for f in state["filters"]
                if f["meta"]["key"] != QUERY
            ]
            fields = []
            for col in state["datasourceStates"]["formBased"]["layers"]["layer1"][
                "columns"
            ].values():
                field = col.get("sourceField")
                if field and field != RECORDS and field not in fields:
                    fields.append(field)
                kql_field = col.get("filter", {}).get("query", "").split(" ", 1)[0]
                if kql_field and kql_field not in fields:
                    fields.append(kql_field)
            view = vis["references"][0]["id"]
            kql = state["query"]["query"]
            host_docs = kql.startswith(HOST_DOCS)
            query = ", ".join(f"`{q}`" for q in queries) or ("—" if host_docs else "all queries")
            if others:
                query += " (" + "; ".join(f"`{o}`" for o in others) + ")"
            title = vis["attributes"]["title"]
            source = "now: hosts" if host_docs else reads[view]
            rest = kql[len(HOST_DOCS) :].removeprefix(" and ") if host_docs else ""
            source += f" (`{rest}`)" if rest else ""
            lines.append(
                f"| {dash['attributes']['title']} | {title} | {source} | {query} | "
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
