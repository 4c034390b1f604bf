"""The reviewed schema: every query of either client has its result columns listed, typed
as osquery's table specs allow, and the installed templates map exactly those columns.

Each query's result columns are found the way osquery finds them: osquery runs its SQL on
SQLite, so the query is run (as ``CREATE TABLE ... AS SELECT``) against empty SQLite
tables declared from osquery's specs (``osquery_specs.py``); SQLite then names the result
columns and gives each the type affinity of what it selects (a ``select *`` expands to
every column, an alias keeps its name, a scalar subquery its column's type).
"""

from __future__ import annotations

import copy
import json
import sqlite3
from importlib import resources

import pytest

from flock_gateway.schedule import load_schedule
from flock_gateway.schema import (
    ES_TYPES,
    SchemaError,
    column_mappings,
    load_query_columns,
    load_twigs,
    parse_query_columns,
    parse_twigs,
)
from flock_gateway.storage.templates import _add_schema_fields, load_templates

from .osquery_specs import TABLES

SQLITE_TYPES = {"TEXT": "TEXT", "INTEGER": "INTEGER", "BIGINT": "INTEGER", "DOUBLE": "REAL"}
# the Elasticsearch types a result column of this SQLite affinity may be indexed as
ALLOWED = {"TEXT": {"keyword"}, "INT": {"keyword", "long"}, "REAL": {"keyword", "double"}}


def result_columns(db: sqlite3.Connection, sql: str) -> dict[str, str]:
    """Result column -> SQLite affinity of ``sql`` run on the osquery tables."""
    db.execute("DROP TABLE IF EXISTS temp.result")
    db.execute("CREATE TEMP TABLE result AS " + sql.rstrip().rstrip(";"))
    return {row[1]: row[2] for row in db.execute("PRAGMA temp.table_info(result)")}


@pytest.fixture(scope="module")
def db():
    conn = sqlite3.connect(":memory:")
    for table, columns in TABLES.items():
        decl = ", ".join(f'"{c}" {SQLITE_TYPES[t]}' for c, t in columns.items())
        conn.execute(f"CREATE TABLE {table} ({decl})")
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def clients_queries():
    """(client, query name, SQL) of every query either client runs."""
    out = [("osqueryd", n, q["query"]) for n, q in load_schedule().queries.items()]
    out += [("flock_agent", t.name, t.query) for t in load_twigs().twigs.values()]
    return out


@pytest.fixture(scope="module")
def derived(db, clients_queries):
    """Query name -> result column -> the SQLite affinities it has in the clients' SQL."""
    out: dict[str, dict[str, set[str]]] = {}
    for _client, name, sql in clients_queries:
        for column, affinity in result_columns(db, sql).items():
            out.setdefault(name, {}).setdefault(column, set()).add(affinity)
    return out


def test_every_query_lists_exactly_the_columns_its_clients_get(derived):
    listed = load_query_columns().queries
    assert set(listed) == set(derived), "a query without listed columns, or a stale entry"
    for name, columns in derived.items():
        assert set(listed[name]) == set(columns), name


def test_column_types_are_what_osquery_sends(derived):
    listed = load_query_columns().queries
    for name, columns in derived.items():
        for column, affinities in columns.items():
            for affinity in affinities:
                assert listed[name][column] in ALLOWED[affinity], (name, column, affinity)


def test_the_reverse_shell_twig_returns_its_socket_and_parent(derived):
    assert {"remote_address", "remote_port", "parent_cmdline", "cmdline", "pid"} <= set(
        derived["reverse_shell"]
    )


@pytest.mark.parametrize("template", ["flock-results"])
def test_generated_template_maps_every_column_of_every_query(derived, template):
    (tpl,) = [t for t in load_templates() if t.name == template]
    data = tpl.body["template"]["mappings"]["properties"]["data"]["properties"]
    mapped = data["columns"]["properties"]
    assert data["columns"]["dynamic"] is False
    expected_types = load_query_columns().column_types()
    for name, columns in derived.items():
        for column in columns:
            assert mapped[column] == ES_TYPES[expected_types[column]], (name, column)
    assert set(mapped) == {c for cols in derived.values() for c in cols}
    assert mapped == column_mappings()
    assert data["decorations"]["properties"]["username"]["type"] == "keyword"


def test_the_template_files_do_not_type_columns_by_hand():
    folder = resources.files("flock_gateway").joinpath("index_templates")
    for entry in folder.iterdir():
        if entry.name.endswith(".json"):
            body = json.loads(entry.read_text(encoding="utf-8"))
            data = body["template"]["mappings"]["properties"].get("data", {})
            for key in ("columns", "decorations"):
                assert not data.get("properties", {}).get(key, {}).get("properties"), entry.name


def test_a_hand_typed_column_is_refused():
    body = {"template": {"mappings": {"properties": {"data": {"properties": {
        "columns": {"dynamic": False, "properties": {"pid": {"type": "keyword"}}}}}}}}}  # fmt: skip
    with pytest.raises(ValueError, match=r"query_columns\.json"):
        _add_schema_fields("x.json", copy.deepcopy(body))


def test_one_type_per_column_name():
    with pytest.raises(SchemaError, match="'pid' is long in a but keyword in b"):
        parse_query_columns({"queries": {"a": {"pid": "long"}, "b": {"pid": "keyword"}}})
    with pytest.raises(SchemaError, match="not one of"):
        parse_query_columns({"queries": {"a": {"pid": "integer"}}})
    with pytest.raises(SchemaError, match="non-empty"):
        parse_query_columns({"queries": {"a": {}}})


def test_twigs_are_the_agents_allow_list():
    twigs = load_twigs()
    schedule = load_schedule()
    assert twigs.allows("reverse_shell")
    assert not schedule.allows("reverse_shell")
    assert twigs.allows("kextstat")
    assert twigs.allows("alf_services")
    for refused in ("unknown", None, ["sip"]):
        assert not twigs.allows(refused)
    for twig in twigs.twigs.values():
        assert twig.platforms <= {"darwin", "linux"}, twig.name


@pytest.mark.parametrize(
    ("twig", "match"),
    [
        ({"interval": 60, "platforms": ["darwin"]}, "no query"),
        ({"query": "select 1", "interval": True, "platforms": ["darwin"]}, "interval"),
        ({"query": "select 1", "interval": 60, "platforms": ["macos"]}, "platforms"),
        ({"query": "select 1", "interval": 60, "platforms": []}, "platforms"),
    ],
)
def test_bad_twigs_are_refused(twig, match):
    with pytest.raises(SchemaError, match=match):
        parse_twigs({"twigs": {"t": twig}})
