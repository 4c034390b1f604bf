"""Every column of every Flock agent twig, sent through ``/submit`` as the agent's osqueryd
writes it (differential lines, every column a JSON string, the ``username`` decorator),
is stored in the real node under the type the schema gives it and is found by a search
on that column. osqueryd's reviewed queries return a subset of the same columns."""

from __future__ import annotations

import dataclasses
import json

import pytest

from flock_gateway.app import create_app
from flock_gateway.schema import load_query_columns, load_twigs

from .helpers import osquery_line, register, stored, submit

UUID = "5A1F4E2B-3C4D-5E6F-7A8B-9C0D1E2F3A4B"


def value_for(twig_index: int, column_index: int, es_type: str, twig: str, column: str) -> str:
    """A value unique to (twig, column), as text the way osquery sends it."""
    if es_type == "long":
        return str(1000 * (twig_index + 1) + column_index)
    if es_type == "double":
        return f"{twig_index + 1}.{column_index + 1}5"
    return f"{twig}:{column}:x"


@pytest.fixture
def strict_client(config, storage):
    return create_app(dataclasses.replace(config, strict_allowlist=True)).test_client()


@pytest.fixture
def twig_rows(strict_client):
    """One line per twig carrying every column of the twig's query, stored."""
    columns = load_query_columns()
    # every reviewed query is a twig (osqueryd's schedule is a subset), so the twigs'
    # lines carry every column of either client
    assert set(columns.queries) == load_twigs().names
    rows = {}
    for i, name in enumerate(sorted(load_twigs().names)):
        rows[name] = {
            column: value_for(i, j, es_type, name, column)
            for j, (column, es_type) in enumerate(columns.queries[name].items())
        }
    token = register(strict_client, UUID)
    lines = [
        osquery_line(UUID, name=name, columns=columns, counter=k)
        for k, (name, columns) in enumerate(rows.items())
    ]
    res = submit(strict_client, UUID, token, lines)
    assert res.status_code == 200, res.data
    body = json.loads(res.data)
    assert (body["stored_count"], body["refused_count"]) == (len(rows), 0)
    return rows


def test_every_twig_column_is_indexed_as_its_schema_type(twig_rows, es, prefix):
    types = load_query_columns().column_types()
    stored(es, prefix)  # refreshes
    mappings = es.indices.get_mapping(index=f"{prefix}-results-*")
    for index in mappings.body.values():
        mapped = index["mappings"]["properties"]["data"]["properties"]["columns"]["properties"]
        for name, columns in twig_rows.items():
            for column in columns:
                assert mapped[column]["type"] == types[column], (name, column)


def test_every_twig_column_is_searchable(twig_rows, es, prefix):
    types = load_query_columns().column_types()
    stored(es, prefix)
    searches, wanted = [], []
    for name, columns in twig_rows.items():
        for column, value in columns.items():
            field = f"data.columns.{column}"
            query = {"bool": {"filter": [{"term": {"data.name": name}}]}}
            if types[column] == "keyword":
                query["bool"]["filter"].append({"term": {field: value}})
            else:  # a number: found by a range around it, as a number, not as text
                near = {"gt": float(value) - 0.01, "lt": float(value) + 0.01}
                query["bool"]["filter"].append({"range": {field: near}})
            searches += [{"index": f"{prefix}-results-*"}, {"query": query, "size": 2}]
            wanted.append((name, column))
    answers = es.msearch(searches=searches)["responses"]
    missing = [w for w, a in zip(wanted, answers, strict=True) if a["hits"]["total"]["value"] != 1]
    assert not missing
    assert len(wanted) == sum(len(c) for c in twig_rows.values()) > 100


def test_a_reverse_shell_is_found_by_its_remote_address(strict_client, es, prefix):
    token = register(strict_client, UUID)
    shell = {
        "pid": "4242", "parent": "4200", "name": "bash", "path": "/bin/bash",
        "cmdline": "bash -i", "cwd": "/tmp", "root": "/", "uid": "501", "gid": "20",
        "start_time": "1700000000", "remote_address": "203.0.113.66", "remote_port": "4444",
        "parent_cmdline": "python3 -c import pty; pty.spawn('/bin/bash')",
    }  # fmt: skip
    quiet = dict(shell, pid="77", name="sh", remote_address="198.51.100.1", remote_port="",
                 parent_cmdline="login -pf nick")  # fmt: skip
    lines = [
        osquery_line(UUID, name="reverse_shell", columns=shell),
        osquery_line(UUID, name="reverse_shell", columns=quiet, counter=1),
    ]
    res = submit(strict_client, UUID, token, lines)
    assert json.loads(res.data)["stored_count"] == 2
    stored(es, prefix)

    def hits(query):
        resp = es.search(index=f"{prefix}-results-*", query=query)
        return [h["_source"]["data"]["columns"]["pid"] for h in resp["hits"]["hits"]]

    # what Kibana sends for the KQL data.columns.remote_address : 203.0.113.66
    assert hits({"match": {"data.columns.remote_address": "203.0.113.66"}}) == ["4242"]
    assert hits({"range": {"data.columns.remote_port": {"gte": 1024}}}) == ["4242"]
    assert hits({"term": {"data.columns.parent_cmdline": shell["parent_cmdline"]}}) == ["4242"]
    # an empty port (a number column osquery left empty) is kept, only not a number
    assert hits({"term": {"data.columns.remote_address": "198.51.100.1"}}) == ["77"]


def test_numbers_sent_as_json_numbers_are_the_same_numbers(strict_client, es, prefix):
    """With osquery's --logger_numerics on, numeric columns arrive as JSON numbers."""
    token = register(strict_client, UUID)
    line = osquery_line(UUID, name="kextstat", numerics=True, columns={
        "idx": 7, "refs": 2, "size": 40960, "name": "com.evil.kext", "version": "1.0",
        "linked_against": "<1 2 3>", "path": "/Library/Extensions/evil.kext"})  # fmt: skip
    res = submit(strict_client, UUID, token, [line])
    assert json.loads(res.data)["stored_count"] == 1
    stored(es, prefix)
    resp = es.search(
        index=f"{prefix}-results-*",
        query={"range": {"data.columns.size": {"gte": 40960, "lte": 40960}}},
    )
    assert [h["_source"]["data"]["columns"]["name"] for h in resp["hits"]["hits"]] == [
        "com.evil.kext"
    ]
