"""Merge the rows of concurrent requests into shared bulk requests.

Elasticsearch spends much less per row on one large bulk than on many small ones, and
agents mostly send a few rows at a time. Each request thread queues its NDJSON lines and
waits; a few of the waiting threads (at most ``concurrency`` at a time, per process) act
as flushers: they take queued requests in arrival order, up to ``max_rows`` rows and
``max_bytes`` bytes, send them as one bulk and hand every request its own slice of the
answer (the items come back in the order of the lines). When fewer than ``max_rows`` rows
are queued a flusher waits at most ``linger_ms`` for more. A request alone larger than the
bounds goes alone. No extra threads: a flusher is a request thread that would otherwise
just wait, so nothing has to survive gunicorn's fork.

A request is answered only after its own rows are acknowledged, and if the bulk fails as
a whole (Elasticsearch down, 429) every request in it gets the error.

Under gunicorn's gevent worker (the role's default) the standard library's threads and
locks are gevent's: each request is a greenlet, and the same code waits cooperatively.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Item = dict[str, Any]
Send = Callable[[bytes], Sequence[Item]]


def _held_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass(eq=False)
class _Pending:
    body: bytes
    rows: int
    queued_at: float
    # released (under the batcher's lock, at most once per wait) to wake the waiting
    # thread; a bare lock is the cheapest thing a thread can sleep on
    wake: threading.Lock = field(default_factory=_held_lock)
    signalled: bool = False
    finished: bool = False
    promoted: bool = False
    items: Sequence[Item] | None = None
    error: Callable[[], BaseException] | None = None

    def signal(self) -> None:
        """Wake the waiting thread (call with the batcher's lock held)."""
        if not self.signalled:
            self.signalled = True
            self.wake.release()


@dataclass
class BatchStats:
    """Counters (per process) that tests and metrics read."""

    bulks: int = 0
    requests: int = 0
    rows: int = 0
    largest_rows: int = 0
    largest_bytes: int = 0


class BulkBatcher:
    def __init__(
        self,
        send: Send,
        *,
        max_rows: int = 2000,
        max_bytes: int = 8 * 1024 * 1024,
        linger_ms: float = 0.0,
        concurrency: int = 1,
        on_error: Callable[[Exception], Callable[[], BaseException]] | None = None,
    ) -> None:
        if max_rows < 1 or max_bytes < 1 or concurrency < 1 or linger_ms < 0:
            raise ValueError("batch bounds must be positive")
        self._send = send
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.linger = linger_ms / 1000
        self.concurrency = concurrency
        self._on_error = on_error or (lambda exc: lambda: exc)
        self._lock = threading.Lock()
        self._more = threading.Condition(self._lock)
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        self._flushers = 0
        self.stats = BatchStats()

    def submit(self, body: bytes, rows: int) -> Sequence[Item]:
        """Send these NDJSON lines (``rows`` documents) and return their bulk items."""
        if rows == 0:
            return []
        p = _Pending(body, rows, time.monotonic())
        with self._lock:
            self._queue.append(p)
            self._queued_rows += rows
            lead = self._flushers < self.concurrency
            if lead:
                self._flushers += 1
            elif self._queued_rows >= self.max_rows:
                self._more.notify_all()
        if lead:
            self._flush_until_done(p)
        while True:
            p.wake.acquire()
            with self._lock:
                p.signalled = False
                promoted, p.promoted = p.promoted, False
            if promoted:
                self._flush_until_done(p)
            if p.finished:
                break
        if p.error is not None:
            raise p.error()
        return p.items or []

    def _flush_until_done(self, own: _Pending) -> None:
        """Flush batches until our own request is answered, then pass the duty on."""
        while True:
            with self._lock:
                if own.finished or not self._queue:
                    if self._queue:
                        # someone is still queued: the oldest waiter takes over the slot
                        head = self._queue[0]
                        head.promoted = True
                        head.signal()
                    else:
                        self._flushers -= 1
                    return
                self._linger()
                batch = self._take()
            self._flush(batch)

    def _linger(self) -> None:
        if not self.linger:
            return
        deadline = self._queue[0].queued_at + self.linger
        while self._queued_rows < self.max_rows:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._more.wait(left)

    def _take(self) -> list[_Pending]:
        batch = [self._queue.popleft()]
        rows, size = batch[0].rows, len(batch[0].body)
        while self._queue:
            nxt = self._queue[0]
            if rows + nxt.rows > self.max_rows or size + len(nxt.body) > self.max_bytes:
                break
            batch.append(self._queue.popleft())
            rows += nxt.rows
            size += len(nxt.body)
        self._queued_rows -= rows
        return batch

    def _flush(self, batch: list[_Pending]) -> None:
        rows = sum(p.rows for p in batch)
        body = batch[0].body if len(batch) == 1 else b"".join(p.body for p in batch)
        try:
            items = self._send(body)
            if len(items) != rows:
                raise RuntimeError(f"bulk answered {len(items)} items for {rows} documents")
        except Exception as exc:  # every request of the batch gets it, in its own thread
            make = self._on_error(exc)
            with self._lock:
                for p in batch:
                    p.error = make
                    p.finished = True
                    p.signal()
            return
        start = 0
        with self._lock:
            stats = self.stats
            stats.bulks += 1
            stats.requests += len(batch)
            stats.rows += rows
            stats.largest_rows = max(stats.largest_rows, rows)
            stats.largest_bytes = max(stats.largest_bytes, len(body))
            for p in batch:
                p.items = items[start : start + p.rows]
                start += p.rows
                p.finished = True
                p.signal()
