import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from flock_gateway.documents import (
    Budget,
    DocumentBuilder,
    Tag,
    TooLarge,
    canonical,
    doc_ids,
    iso,
    row_time,
)

RECEIVED = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
TAG = Tag("host-1", "Nick Fury", "flock-agent")


def builder(received=RECEIVED, retention=90):
    return DocumentBuilder("flock", TAG, retention, received=received)


def row(**kw):
    r = {
        "name": "os_version",
        "hostIdentifier": "host-1",
        "unixTime": 1795766400,  # 2026-11-27T08:00:00Z
        "columns": {"version": "14.1"},
        "action": "added",
    }
    r.update(kw)
    return r


def test_timestamp_and_index_from_unixtime():
    (doc,) = builder().results([row()])
    assert doc.source["@timestamp"] == "2026-11-27T08:00:00.000Z"
    assert doc.index == "flock-results-2026.11.27"
    (doc,) = builder().results([row(unixTime="1795684799")])  # 2026-11-26T09:19:59Z
    assert doc.index == "flock-results-2026.11.26"


def test_tagging():
    (doc,) = builder().results([row()])
    assert doc.source["flock"] == {
        "username": "host-1",
        "name": "Nick Fury",
        "source": "flock-agent",
        "received_at": "2026-11-27T12:00:00.000Z",
    }
    assert doc.source["data"] == row()
    assert set(doc.source) == {"@timestamp", "flock", "data"}


def test_no_unixtime_uses_receipt_time():
    (doc,) = builder().results([{"host_uuid": "host-1", "other_arbitrary_data": "goes here"}])
    assert doc.source["@timestamp"] == iso(RECEIVED)
    assert doc.index == "flock-results-2026.11.27"


def test_far_future_uses_receipt_day():
    (doc,) = builder().results([row(unixTime=4102444800)])  # 2100
    assert doc.index == "flock-results-2026.11.27"
    assert row_time(10**20, RECEIVED) == RECEIVED


def test_rows_older_than_retention_are_dropped():
    b = builder(retention=90)
    docs = b.results([row(unixTime=1700000000), row()])  # 2023 and today
    assert len(docs) == 1
    assert b.expired == 1


def test_ids_are_deterministic_across_requests():
    batch = [row(), row(columns={"version": "14.2"}), row(name="firewall")]
    first = builder().results(batch)
    again = builder(received=datetime(2026, 11, 28, 1, 0, tzinfo=UTC)).results(batch)
    assert [(d.index, d.id) for d in first] == [(d.index, d.id) for d in again]
    assert len({d.id for d in first}) == 3


def test_ids_do_not_depend_on_key_order():
    a = builder().results([row(), row(name="x")])
    reordered = {k: row()[k] for k in reversed(list(row()))}
    b = builder().results([reordered, row(name="x")])
    assert [d.id for d in a] == [d.id for d in b]
    # the rows before one are part of its id: a resend must keep the order
    c = builder().results([row(name="x"), row()])
    assert not {d.id for d in a} & {d.id for d in c}


def test_identical_rows_in_one_request_are_kept_apart():
    docs = builder().results([row(), row(), row()])
    assert len({d.id for d in docs}) == 3
    again = builder().results([row(), row(), row()])
    assert [d.id for d in docs] == [d.id for d in again]


def test_ids_follow_the_id_scheme_definition():
    """Ids must not change across upgrades (a batch resent across one is stored once): a
    chain over the request's rows, each link sha256(previous link || sha256(agent NUL
    kind NUL the row's sorted compact JSON)), 32 zero bytes before the first; an id is its
    link's first 40 hex digits."""
    rows = [row(), row(), row(columns={"version": "Café ユーザー"}), row(unixTime="1795684799")]
    got = [d.id for d in builder().results(rows)]
    want = []
    link = bytes(32)
    texts = []
    for r in rows:
        text = json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        texts.append(text)
        row_digest = hashlib.sha256(f"host-1\0results\0{text}".encode()).digest()
        link = hashlib.sha256(link + row_digest).digest()
        want.append(link.hex()[:40])
    assert got == want
    assert doc_ids("host-1", "results", texts) == want


def test_ids_depend_on_agent_kind_and_what_came_before():
    other = DocumentBuilder("flock", Tag("host-2", "", "flock-agent"), 90, received=RECEIVED)
    assert builder().results([row()])[0].id != other.results([row()])[0].id
    assert doc_ids("a", "results", ["{}"]) != doc_ids("a", "agent-logs", ["{}"])
    # the same row after another is another document; a longer resend keeps the ids
    first, second = doc_ids("a", "results", ["{}", "{}"])
    assert first != second
    assert doc_ids("a", "results", ["{}", "{}", "[]"])[:2] == [first, second]


def test_an_expired_row_is_a_link_too():
    """A resend made once its first row has expired keeps the later rows' ids."""
    old = row(unixTime=str(int(RECEIVED.timestamp()) - 89 * 86400 - 1))
    fresh = row(columns={"n": "1"})
    before = builder().results([old, fresh])
    after = builder(received=RECEIVED + timedelta(days=2)).results([old, fresh])
    assert len(before) == 2
    assert len(after) == 1
    assert after[0].id == before[1].id


def test_snapshot_expanded_one_doc_per_row():
    snap = row(action="snapshot", snapshot=[{"a": "1"}, {"a": "2"}, {"a": "1"}])
    del snap["columns"]
    docs = builder().results([snap])
    assert [d.source["data"]["columns"] for d in docs] == [{"a": "1"}, {"a": "2"}, {"a": "1"}]
    assert all(d.source["data"]["action"] == "snapshot" for d in docs)
    assert all("snapshot" not in d.source["data"] for d in docs)
    assert len({d.id for d in docs}) == 3
    assert [d.id for d in docs] == [d.id for d in builder().results([snap])]


def test_agent_logs_millisecond_timestamps():
    b = builder()
    (doc,) = b.agent_logs([{"type": "server_enabled", "timestamp": 1795766400123}])
    assert doc.index == "flock-agent-logs-2026.11.27"
    assert doc.source["@timestamp"] == "2026-11-27T08:00:00.123Z"


def test_canonical_is_order_independent():
    assert canonical({"b": 1, "a": [1, {"d": 2, "c": 3}]}) == canonical(
        {"a": [1, {"c": 3, "d": 2}], "b": 1}
    )


@pytest.mark.parametrize(
    "forged",
    [
        {"flock.username": "victim"},
        {"flock": {"username": "victim", "source": "osquery"}},
        {"flock": {"quarantine_reason": "x"}, "flock.received_at": "2020-01-01T00:00:00Z"},
        {"@timestamp": "2020-01-01T00:00:00Z"},
        {"columns": {"flock.username": "victim"}},
    ],
)
def test_client_keys_never_reach_the_gateway_fields(forged):
    b = builder()
    for doc in [*b.results([row(**forged)]), *b.agent_logs([{"type": "t", **forged}])]:
        assert set(doc.source) == {"@timestamp", "flock", "data"}
        assert doc.source["flock"] == {
            "username": "host-1",
            "name": "Nick Fury",
            "source": "flock-agent",
            "received_at": "2026-11-27T12:00:00.000Z",
        }
        assert doc.source["data"]["type" if "type" in doc.source["data"] else "name"]


def test_expansion_is_bounded_before_building():
    snap = row(snapshot=[{}] * 1000)
    with pytest.raises(TooLarge, match="rows"):
        DocumentBuilder("flock", TAG, 90, received=RECEIVED, budget=Budget(max_docs=999)).results(
            [snap]
        )
    fat = row(snapshot=[{}] * 100, decorations={"pad": "x" * 10_000})
    with pytest.raises(TooLarge, match="bytes"):
        DocumentBuilder(
            "flock", TAG, 90, received=RECEIVED, budget=Budget(max_bytes=500_000)
        ).results([fat])
    assert len(builder().results([fat])) == 100


def test_weekly_and_monthly_indices():
    weekly = DocumentBuilder("flock", TAG, 90, received=RECEIVED, granularity="week")
    (doc,) = weekly.results([row()])
    assert doc.index == "flock-results-2026.w48"
    monthly = DocumentBuilder("flock", TAG, 90, received=RECEIVED, granularity="month")
    (doc,) = monthly.agent_logs([{"type": "x", "timestamp": 1795766400123}])
    assert doc.index == "flock-agent-logs-2026.11"
