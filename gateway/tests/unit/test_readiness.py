"""A worker's readiness: probed when due, one probe at a time, recovering by itself."""

from __future__ import annotations

import threading

from flock_gateway.storage.client import READY, UNREACHABLE, ProbeResult
from flock_gateway.storage.readiness import Readiness

DOWN = ProbeResult(False, "cannot reach Elasticsearch", UNREACHABLE)
UP = ProbeResult(True, "reachable", READY)


class Storage:
    """What the probe finds, and how often it was asked."""

    def __init__(self, result: ProbeResult) -> None:
        self.result = result
        self.probes = 0

    def check(self) -> ProbeResult:
        self.probes += 1
        return self.result


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_not_ready_is_probed_at_most_once_per_interval_and_recovers():
    storage, clock = Storage(DOWN), Clock()
    readiness = Readiness(storage.check, 2.0, clock)
    assert [readiness.ready() for _ in range(100)] == [False] * 100
    assert storage.probes == 1
    storage.result = UP
    clock.now += 1.9
    assert not readiness.ready()
    assert storage.probes == 1
    clock.now += 0.2
    assert readiness.ready()
    assert storage.probes == 2


def test_once_ready_requests_do_not_probe_but_refresh_does():
    storage, clock = Storage(UP), Clock()
    readiness = Readiness(storage.check, 2.0, clock)
    assert readiness.refresh().ok
    storage.result = DOWN
    clock.now += 10
    assert all(readiness.ready() for _ in range(100))
    assert storage.probes == 1
    # /readyz notices the outage; the endpoints then wait for a probe to pass again
    assert readiness.refresh() == DOWN
    assert not readiness.ready()
    assert storage.probes == 2


def test_a_slow_probe_does_not_hold_up_other_requests():
    started, release = threading.Event(), threading.Event()

    def slow_check() -> ProbeResult:
        started.set()
        release.wait(10)
        return UP

    readiness = Readiness(slow_check, 0.0)
    worker = threading.Thread(target=readiness.refresh)
    worker.start()
    assert started.wait(10)
    assert not readiness.ready()  # answered at once with the latest result
    release.set()
    worker.join(10)
    assert readiness.ready()
