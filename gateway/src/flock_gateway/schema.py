"""The reviewed schema beside osqueryd's schedule: Flock agent's twigs and the columns
every query returns.

Two clients send result rows, each running its own reviewed set of queries:

* osqueryd runs the schedule the gateway serves (``data/osquery_schedule.json``,
  :mod:`.schedule`); ``/osquery/log`` stores only its query names.
* Flock agent runs its own *twigs* (``data/flock_agent_twigs.json``: name, query,
  interval, platforms); ``/submit`` under ``strict_allowlist`` stores only their names.

``data/query_columns.json`` says, for every query name of either client, which columns
the query returns and the Elasticsearch type each is indexed as. The index templates'
``data.columns`` and ``data.decorations`` mappings are generated from it
(:func:`column_mappings`, :func:`decoration_mappings`), never typed by hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import resources
from typing import Any

# osquery's platform words; the agent's own "macos" is written "darwin" in the data file
from .fields import PLATFORMS

# What a column may be indexed as. keyword holds any JSON scalar osquery sends (as text);
# long and double read a number or a string holding one, and leave a value that is
# neither unindexed (the templates set ignore_malformed), the row still stored.
ES_TYPES: dict[str, dict[str, Any]] = {
    "keyword": {"type": "keyword", "ignore_above": 1024},
    "long": {"type": "long"},
    "double": {"type": "double"},
}


class SchemaError(ValueError):
    pass


@dataclass(frozen=True)
class Twig:
    name: str
    query: str
    interval: int
    platforms: frozenset[str]
    description: str


@dataclass(frozen=True)
class Twigs:
    """Flock agent's twigs: what an agent may send on ``/submit``."""

    twigs: dict[str, Twig]

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.twigs)

    def allows(self, name: Any) -> bool:
        return isinstance(name, str) and name in self.twigs

    @cached_property
    def platform_hints(self) -> dict[str, str]:
        """Twig name -> platform, of the twigs the agent runs on one platform only: a
        host that sends a line of one is of that platform."""
        return {
            name: next(iter(twig.platforms))
            for name, twig in self.twigs.items()
            if len(twig.platforms) == 1
        }


@dataclass(frozen=True)
class QueryColumns:
    """Each query's result columns (name -> Elasticsearch type), and the decorations."""

    queries: dict[str, dict[str, str]]
    decorations: dict[str, str]

    def column_types(self) -> dict[str, str]:
        """Column name -> type over every query (one flat ``data.columns`` object)."""
        out: dict[str, str] = {}
        for columns in self.queries.values():
            out.update(columns)
        return dict(sorted(out.items()))


def _read(name: str) -> Any:
    text = resources.files("flock_gateway").joinpath("data", name).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise SchemaError(f"{name} is not valid JSON: {exc}") from None


def parse_twigs(data: Any) -> Twigs:
    twigs = data.get("twigs") if isinstance(data, dict) else None
    if not isinstance(twigs, dict) or not twigs:
        raise SchemaError("flock_agent_twigs.json needs a non-empty 'twigs' object")
    out = {}
    for name, twig in twigs.items():
        if not isinstance(twig, dict) or not isinstance(twig.get("query"), str):
            raise SchemaError(f"twig {name!r} has no query")
        interval = twig.get("interval")
        if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
            raise SchemaError(f"twig {name!r} needs an integer interval")
        platforms = twig.get("platforms")
        if not isinstance(platforms, list) or not platforms or not set(platforms) <= set(PLATFORMS):
            raise SchemaError(f"twig {name!r}: platforms must be a list of {sorted(PLATFORMS)}")
        out[name] = Twig(
            name=name,
            query=twig["query"],
            interval=interval,
            platforms=frozenset(platforms),
            description=str(twig.get("description", "")),
        )
    return Twigs(out)


def parse_query_columns(data: Any) -> QueryColumns:
    queries = data.get("queries") if isinstance(data, dict) else None
    if not isinstance(queries, dict) or not queries:
        raise SchemaError("query_columns.json needs a non-empty 'queries' object")
    decorations = data.get("decorations", {})
    seen: dict[str, tuple[str, str]] = {}  # column -> (type, first query naming it)
    for where, columns in [*queries.items(), ("decorations", decorations)]:
        if not isinstance(columns, dict) or not columns:
            raise SchemaError(f"{where}: columns must be a non-empty object")
        for column, es_type in columns.items():
            if es_type not in ES_TYPES:
                raise SchemaError(
                    f"{where}.{column}: type {es_type!r} is not one of {list(ES_TYPES)}"
                )
            if where == "decorations":
                continue
            first = seen.setdefault(column, (es_type, where))
            if first[0] != es_type:
                raise SchemaError(
                    f"column {column!r} is {first[0]} in {first[1]} but {es_type} in {where}:"
                    " data.columns is one object, so a column has one type"
                )
    return QueryColumns(queries=queries, decorations=decorations)


@cache
def load_twigs() -> Twigs:
    return parse_twigs(_read("flock_agent_twigs.json"))


@cache
def load_query_columns() -> QueryColumns:
    return parse_query_columns(_read("query_columns.json"))


def column_mappings() -> dict[str, Any]:
    """The ``data.columns.properties`` of every template holding result rows."""
    types = load_query_columns().column_types()
    return {column: dict(ES_TYPES[es_type]) for column, es_type in types.items()}


def decoration_mappings() -> dict[str, Any]:
    """The ``data.decorations.properties`` (osquery decorators the clients configure)."""
    decorations = load_query_columns().decorations
    return {name: dict(ES_TYPES[es_type]) for name, es_type in sorted(decorations.items())}
