"""Filters of the kibana role."""

from __future__ import annotations

import json
from typing import Any

# The prefix dashboards/build_dashboards.py writes the data views for.
GENERATED_PREFIX = "flock"


def dashboards_for_prefix(ndjson: str, prefix: str, written_for: str = GENERATED_PREFIX) -> str:
    """The saved objects with every data view's index pattern moved to ``prefix``.

    Only the ``title`` of ``index-pattern`` objects (the pattern Kibana searches, e.g.
    ``flock-results-*``) changes; ids, references and every other line stay byte for byte,
    so for the prefix the file was written for the text comes back unchanged (and its
    checksum with it).
    """
    if prefix == written_for:
        return ndjson
    old = f"{written_for}-"
    lines = []
    for line in ndjson.splitlines(keepends=True):
        body = line.strip()
        if body:
            obj = json.loads(body)
            attrs = obj.get("attributes") or {}
            title = attrs.get("title", "")
            if obj.get("type") == "index-pattern" and title.startswith(old):
                attrs["title"] = prefix + "-" + title[len(old) :]
                ending = line[len(line.rstrip("\r\n")) :]
                line = json.dumps(obj, separators=(",", ":"), sort_keys=True) + ending
        lines.append(line)
    return "".join(lines)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"kibana_dashboards_for_prefix": dashboards_for_prefix}
