"""The current-state documents a request's lines make (state.py), without storage: the
ids that tie a row's lines together, the versions that order them, snapshot slots and
tombstones, the platform of os_version rows. Against the real node: test_state.py in
tests/integration."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from flock_gateway import fields
from flock_gateway.documents import DocumentBuilder, Tag
from flock_gateway.schema import load_twigs
from flock_gateway.state import (
    COUNTER_BITS,
    SeenHosts,
    SnapshotMark,
    StateLines,
    host_lines,
    line_version,
    platform_of,
)

RECEIVED = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
NOW = int(RECEIVED.timestamp())


def state(username: str = "laptop-1", **kw: Any) -> StateLines:
    builder = DocumentBuilder("flock", Tag(username, "Laptop", "flock-agent"), 30, RECEIVED)
    return StateLines(builder, "flock-state", **kw)


def line(action: str, columns: dict[str, Any], t: int = NOW, counter: int = 1, name: str = "apps"):
    return {
        "name": name,
        "hostIdentifier": "h",
        "action": action,
        "unixTime": t,
        "counter": counter,
        "columns": columns,
    }


def docs(bulk: bytes) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    parts = [orjson.loads(p) for p in bulk.split(b"\n") if p]
    return [(parts[i]["index"], parts[i + 1]) for i in range(0, len(parts), 2)]


def fed(s: StateLines, *lines: dict[str, Any]) -> StateLines:
    for item in lines:
        if "snapshot" in item:
            s.snapshot(item)
        else:
            s.differential(item, orjson.dumps(item, option=orjson.OPT_SORT_KEYS))
    return s


def test_versions_order_lines_by_time_then_run():
    assert line_version(NOW, 5, NOW) < line_version(NOW, 6, NOW) < line_version(NOW + 1, 0, NOW)
    assert line_version(str(NOW), "5", NOW) == line_version(NOW, 5, NOW)
    assert line_version(NOW, 2**40, NOW) == (NOW << COUNTER_BITS) | (2**COUNTER_BITS - 1)
    # no time of its own: nothing to order it by
    for bad in (None, "x", True, 5, NOW + 3 * 86_400):
        assert line_version(bad, 1, NOW) is None


def test_platform_families():
    assert platform_of({"platform": "darwin"}) == "darwin"
    assert platform_of({"platform": "windows"}) == "windows"
    assert platform_of({"platform": "ubuntu", "platform_like": "debian"}) == "linux"
    assert platform_of({"platform": "rhel", "platform_like": "rhel fedora"}) == "linux"
    assert platform_of({"version": "14.1"}) is None


def test_added_and_removed_lines_of_a_row_reach_one_document():
    s = fed(
        state(),
        line("added", {"name": "Slack", "version": "4"}, counter=1),
        line("removed", {"version": "4", "name": "Slack"}, t=NOW + 60, counter=2),
        line("added", {"name": "Zoom", "version": "5"}),
    )
    out = docs(s.bulk({})[0])
    assert len(out) == 3
    (a1, s1), (a2, s2), (a3, s3) = out
    assert a1["_id"] == a2["_id"] != a3["_id"]
    assert a1["version"] < a2["version"]
    assert all(a["version_type"] == "external" and a["_index"] == "flock-state" for a, _ in out)
    assert (s1["flock"]["present"], s2["flock"]["present"], s3["flock"]["present"]) == (
        True,
        False,
        True,
    )
    assert s2["flock"]["kind"] == "row"
    assert s2["flock"]["username"] == "laptop-1"
    assert s2["data"]["columns"] == {"name": "Slack", "version": "4"}
    assert s2["@timestamp"] == "2026-11-30T12:01:00.000Z"


def test_ids_differ_by_host_and_query():
    row = {"name": "Slack"}
    ids = {
        docs(fed(state(user), line("added", row, name=query)).bulk({})[0])[0][0]["_id"]
        for user in ("a", "b")
        for query in ("apps", "other")
    }
    assert len(ids) == 4


def test_lines_that_change_nothing_now_are_left_out():
    s = fed(
        state(),
        line("snapshot-ish", {"a": 1}),
        {**line("added", {"a": 1}), "unixTime": None},
    )
    assert s.bulk({})[1] == 0
    assert s.unordered == 1


def snapshot(rows: list[dict[str, Any]], t: int = NOW, name: str = "os_version") -> dict[str, Any]:
    return {"name": name, "hostIdentifier": "h", "unixTime": t, "snapshot": rows}


def test_a_snapshot_fills_slots_and_tombstones_the_rest_of_earlier_ones():
    first = fed(state(), snapshot([{"n": "1"}, {"n": "2"}, {"n": "3"}]))
    bulk, count, marks = first.bulk({})
    assert count == 3
    assert marks == {"os_version": SnapshotMark(NOW << COUNTER_BITS, 3, 3)}
    first_ids = [a["_id"] for a, _ in docs(bulk)]

    later = fed(state(), snapshot([{"n": "9"}], t=NOW + 3600))
    bulk, count, changed = later.bulk(marks)
    out = docs(bulk)
    assert [a["_id"] for a, _ in out] == first_ids  # the same slots
    assert [src["flock"]["present"] for _, src in out] == [True, False, False]
    assert out[0][1]["data"]["columns"] == {"n": "9"}
    assert out[0][1]["data"]["action"] == "snapshot"
    assert changed == {"os_version": SnapshotMark((NOW + 3600) << COUNTER_BITS, 1, 3)}

    # an empty snapshot: every slot a tombstone
    empty = fed(state(), snapshot([], t=NOW + 7200))
    out = docs(empty.bulk(changed)[0])
    assert [src["flock"]["present"] for _, src in out] == [False, False, False]


def test_a_snapshot_not_newer_than_the_mark_changes_nothing():
    marks = {"os_version": SnapshotMark((NOW + 10) << COUNTER_BITS, 1, 4)}
    for t in (NOW, NOW + 10):
        assert fed(state(), snapshot([{"n": "1"}], t=t)).bulk(marks)[1:] == (0, {})


def test_platform_and_os_version_from_the_newest_os_version_row():
    s = fed(
        state(),
        line("added", {"platform": "darwin", "version": "14.1"}, t=NOW + 5, name="os_version"),
        line("added", {"platform": "darwin", "version": "13.0"}, t=NOW, name="os_version"),
        line("added", {"name": "Slack"}),
    )
    for _, src in docs(s.bulk({})[0]):
        assert src["flock"][fields.PLATFORM] == "darwin"
        assert src["flock"][fields.OS_VERSION] == "14.1"
    assert (s.platform, s.os_version) == ("darwin", "14.1")
    # a removed os_version row tells nothing
    s = fed(state(platform="linux"), line("removed", {"platform": "darwin"}, name="os_version"))
    assert s.os is None
    assert s.platform == "linux"


def test_a_twig_of_one_platform_tells_a_host_of_unknown_platform():
    """Until a Flock agent's first os_version row (a daily twig), a line of a twig the
    agent runs on macOS only tells the platform: every row of the request carries it."""
    hints = load_twigs().platform_hints
    assert hints["launchd"] == hints["installed_applications"] == "darwin"
    assert "suid_bin" not in hints
    assert "os_version" not in hints
    s = fed(
        state(hints=hints),
        line("added", {"path": "/usr/bin/sudo"}, name="suid_bin"),
        line("added", {"label": "com.example.agent"}, name="launchd"),
    )
    assert s.tells_os
    assert s.may_tell_os({"suid_bin", "launchd"})
    assert not s.may_tell_os({"suid_bin"})
    for _, src in docs(s.bulk({})[0]):
        assert src["flock"][fields.PLATFORM] == "darwin"
        assert fields.OS_VERSION not in src["flock"]
    # lines of twigs both platforms run tell nothing
    s = fed(state(hints=hints), line("added", {"path": "/usr/bin/sudo"}, name="suid_bin"))
    assert not s.tells_os
    assert fields.PLATFORM not in docs(s.bulk({})[0])[0][1]["flock"]
    # an os_version row says more
    s = fed(
        state(hints=hints),
        line("added", {"label": "x"}, name="launchd"),
        line("added", {"platform": "ubuntu", "platform_like": "debian"}, name="os_version"),
    )
    s.bulk({})
    assert s.platform == "linux"


def test_the_host_document():
    kw = {"username": "Laptop-1", "name": "L", "source": "osquery", "platform": "linux"}
    ((action, src),) = docs(
        host_lines("flock-state", **kw, last_seen="t", seen_ms=5, os_version="6")
    )
    ((again, _),) = docs(host_lines("flock-state", **kw, last_seen="u", seen_ms=9, os_version=None))
    assert action["_id"] == again["_id"]
    assert (action["version"], again["version"]) == (5, 9)
    assert src["flock"] == {
        "username": "Laptop-1",
        "name": "L",
        "source": "osquery",
        "kind": "host",
        "last_seen": "t",
        "platform": "linux",
        "os_version": "6",
    }


@pytest.mark.parametrize("value", [[1, 2], [1, 2, -3], "x", None, [1, 2, 3.5]])
def test_unreadable_marks_are_none(value):
    assert SnapshotMark.read(value) is None
    assert SnapshotMark.read([1, 2, 3]) == SnapshotMark(1, 2, 3)


def test_a_host_document_is_due_once_per_resolution():
    seen = SeenHosts(resolution=3600)
    assert seen.due("a", now=0.0)
    assert not seen.due("a", now=3599.0)
    assert seen.due("b", now=10.0)
    assert seen.due("a", now=3600.0)
    seen.forget("a")  # its write failed
    assert seen.due("a", now=3601.0)
