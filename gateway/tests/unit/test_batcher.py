"""The batcher's hand-over between flushing threads, with a stand-in for the bulk call
(tests/integration/test_shared_bulks.py covers it against the real node)."""

import threading
import time

import pytest

from flock_gateway.storage.batcher import BulkBatcher


def echo_send(calls):
    def send(body: bytes):
        calls.append(body)
        time.sleep(0.002)  # a bulk takes a while: others queue up meanwhile
        return [{"line": line.decode()} for line in body.splitlines()]

    return send


@pytest.mark.parametrize("concurrency", [1, 3])
def test_every_request_gets_exactly_its_own_items(concurrency):
    calls: list[bytes] = []
    batcher = BulkBatcher(echo_send(calls), max_rows=25, concurrency=concurrency)
    results: dict[int, list] = {}

    def request(i: int) -> None:
        n = 1 + i % 7
        body = b"".join(b"r%d-%d\n" % (i, k) for k in range(n))
        for _ in range(5):
            results.setdefault(i, []).append(batcher.submit(body, n))

    threads = [threading.Thread(target=request, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)  # nobody left waiting
    for i, answers in results.items():
        n = 1 + i % 7
        assert answers == [[{"line": f"r{i}-{k}"} for k in range(n)]] * 5
    assert len(calls) < 200  # merged
    assert all(len(body.splitlines()) <= 25 for body in calls)
    assert batcher.stats.requests == 200


def test_failure_reaches_every_request_of_the_bulk():
    def send(body: bytes):
        time.sleep(0.05)
        raise ConnectionError("down")

    batcher = BulkBatcher(send, linger_ms=50, on_error=lambda exc: lambda: RuntimeError("503"))
    errors = []

    def request() -> None:
        try:
            batcher.submit(b"x\n", 1)
        except RuntimeError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=request) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(errors) == 8
    assert len({id(e) for e in errors}) == 8  # each thread raises its own exception


def test_item_count_mismatch_is_an_error():
    batcher = BulkBatcher(lambda body: [], on_error=lambda exc: lambda: RuntimeError(str(exc)))
    with pytest.raises(RuntimeError, match="0 items for 2 documents"):
        batcher.submit(b"a\nb\n", 2)
