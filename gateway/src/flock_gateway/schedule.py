"""The reviewed osquery schedule (data/osquery_schedule.json) and the config served to
osquery hosts.

The schedule file is osquery's own ``{"schedule": {name: {query, interval, platform,
description, ...}}}`` format. It is the only thing that decides what laptops collect: the
osquery config endpoint serves it, and the server-side allow-list refuses rows whose
query name is not in it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

# Options that switch off the parts of osquery's remote API that would let the server
# side read arbitrary data from a laptop (live queries, file carving). The config
# endpoint serves them and the flags file sets them, so neither side can turn them on.
PRIVACY_FLAGS: dict[str, bool] = {
    "disable_distributed": True,
    "disable_carver": True,
    "carver_disable_function": True,
}
# What the config endpoint serves: the privacy flags and how the schedule runs.
PRIVACY_OPTIONS: dict[str, Any] = {
    **PRIVACY_FLAGS,
    "schedule_splay_percent": 10,
    "utc": True,
    "logger_min_status": 1,
}


class ScheduleError(ValueError):
    pass


@dataclass(frozen=True)
class Schedule:
    queries: dict[str, dict[str, Any]]
    decorators: dict[str, Any] | None = None

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.queries)

    def allows(self, name: Any) -> bool:
        return isinstance(name, str) and name in self.queries

    def osquery_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "options": dict(PRIVACY_OPTIONS),
            "schedule": {name: dict(q) for name, q in self.queries.items()},
        }
        if self.decorators:
            config["decorators"] = self.decorators
        return config


def load_schedule(path: str | None = None) -> Schedule:
    if path:
        text = Path(path).read_text(encoding="utf-8")
    else:
        text = (
            resources.files("flock_gateway")
            .joinpath("data", "osquery_schedule.json")
            .read_text(encoding="utf-8")
        )
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ScheduleError(f"osquery schedule is not valid JSON: {exc}") from None
    schedule = data.get("schedule") if isinstance(data, dict) else None
    if not isinstance(schedule, dict) or not schedule:
        raise ScheduleError("osquery schedule must be an object with a non-empty 'schedule'")
    for name, query in schedule.items():
        if not isinstance(query, dict) or not isinstance(query.get("query"), str):
            raise ScheduleError(f"schedule entry {name!r} has no query")
        if not isinstance(query.get("interval"), int) or query["interval"] < 1:
            raise ScheduleError(f"schedule entry {name!r} needs an integer interval")
    decorators = data.get("decorators")
    return Schedule(
        queries=schedule, decorators=decorators if isinstance(decorators, dict) else None
    )
