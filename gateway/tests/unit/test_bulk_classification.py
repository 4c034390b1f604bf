"""How per-item bulk outcomes map to answers. Uses recorded Elasticsearch bulk response
shapes in a minimal stand-in for the bulk sender (the failure statuses 429/503 cannot be
provoked on demand on the real node; the 201/409/400 paths are exercised against it in
tests/integration)."""

import json

import pytest

from flock_gateway.documents import Doc
from flock_gateway.storage.errors import StorageThrottled, StorageUnavailable
from flock_gateway.storage.results import AllCreated, BulkWriter, bulk_items


class RecordedBulk:
    """Answers each bulk with the next recorded answer, as the bytes the node sends."""

    def __init__(self, *responses):
        self.responses = list(responses)
        self.calls = []

    def send(self, body):
        # the writer sends NDJSON bytes; record them as the list of lines they encode
        self.calls.append([json.loads(line) for line in body.splitlines()])
        return json.dumps(self.responses.pop(0), separators=(",", ":")).encode()


def writer(client):
    return BulkWriter(None, sender=client)


def item(status, error_type=None):
    out = {"create": {"_index": "i", "_id": "x", "status": status}}
    if error_type:
        out["create"]["error"] = {"type": error_type, "reason": "r"}
    return out


def docs(n):
    flock = {"username": "h", "name": "", "source": "flock-agent", "received_at": "t"}
    return [
        Doc("i", str(i), {"@timestamp": "t", "flock": dict(flock), "data": {"name": "q", "x": i}})
        for i in range(n)
    ]


def test_created_and_duplicates_count_as_stored():
    client = RecordedBulk({"errors": True, "items": [item(201), item(409, "version_conflict")]})
    result = writer(client).write(docs(2))
    assert (result.created, result.duplicates, result.stored) == (1, 1, 2)
    assert len(client.calls) == 1


@pytest.mark.parametrize(
    ("statuses", "error"),
    [
        ([201, 429], StorageThrottled),
        ([429, 429], StorageThrottled),
        ([201, 503], StorageUnavailable),
        ([429, 500], StorageUnavailable),
        ([201, 403], StorageUnavailable),
        ([404, 201], StorageUnavailable),
    ],
)
def test_retryable_failures(statuses, error):
    client = RecordedBulk({"errors": True, "items": [item(s, "e") for s in statuses]})
    with pytest.raises(error):
        writer(client).write(docs(len(statuses)))


def test_mapping_refusals_are_quarantined_in_a_second_request():
    client = RecordedBulk(
        {"errors": True, "items": [item(201), item(400, "document_parsing_exception")]},
        {"errors": False, "items": [item(201)]},
    )
    result = writer(client).write(docs(2))
    assert (result.created, result.quarantined, result.requests) == (1, 1, 2)
    (meta, source) = client.calls[1]
    assert meta == {"create": {"_index": "i", "_id": "1"}}
    assert json.loads(source["flock"]["raw_json"]) == {"name": "q", "x": 1}
    assert set(source) == {"@timestamp", "flock"}
    assert source["flock"]["quarantine_reason"].startswith("document_parsing_exception")


def test_failed_quarantine_is_503():
    client = RecordedBulk(
        {"errors": True, "items": [item(400, "document_parsing_exception")]},
        {"errors": True, "items": [item(400, "document_parsing_exception")]},
    )
    with pytest.raises(StorageUnavailable):
        writer(client).write(docs(1))


def test_an_answer_without_errors_counts_every_document_created():
    client = RecordedBulk({"errors": False, "items": [item(201)] * 3})
    result = writer(client).write(docs(3))
    assert (result.created, result.stored, result.errors) == (3, 3, [])


def test_items_without_errors_are_counted_not_parsed_and_slice_by_request():
    answer = b'{"errors":false,"items":[' + b",".join([b'{"create":{"status":201}}'] * 7) + b"]}"
    items = bulk_items(answer)
    assert type(items) is AllCreated
    assert len(items) == 7
    assert [len(items[0:3]), len(items[3:7]), len(items[5:9])] == [3, 4, 2]
    assert list(items[1:3]) == [{"status": 201}] * 2
    with pytest.raises(IndexError):
        items[7]


def test_items_with_errors_are_parsed_in_order():
    answer = json.dumps({"errors": True, "items": [item(201), item(409, "conflict")]}).encode()
    assert [i["status"] for i in bulk_items(answer)] == [201, 409]
