import io
import json
import logging

from flock_gateway.logging import JsonFormatter


def test_json_lines_and_redaction():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("flock_gateway.test_logging")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.info(
        "hello Basic aG9zdDp0b2tlbg==",
        extra={"agent": "host-1", "token": "abc", "details": {"Authorization": "Basic x"}},
    )
    entry = json.loads(stream.getvalue())
    assert entry["msg"] == "hello Basic [redacted]"
    assert entry["agent"] == "host-1"
    assert entry["token"] == "[redacted]"
    assert entry["details"] == {"Authorization": "[redacted]"}
    assert entry["level"] == "INFO"
    assert "aG9zdDp0b2tlbg" not in stream.getvalue()


def record(created: float, **extra) -> logging.LogRecord:
    rec = logging.LogRecord("flock_gateway.t", logging.INFO, "", 0, "m", None, None)
    rec.created, rec.msecs = created, (created % 1) * 1000
    rec.__dict__.update(extra)
    return rec


def test_timestamps_follow_the_clock_across_seconds():
    fmt = JsonFormatter()
    stamps = [json.loads(fmt.format(record(t)))["ts"] for t in (0.5, 0.75, 61.25, 86400.0)]
    assert stamps == [
        "1970-01-01T00:00:00.500Z",
        "1970-01-01T00:00:00.750Z",
        "1970-01-01T00:01:01.250Z",
        "1970-01-02T00:00:00.000Z",
    ]


def test_values_json_cannot_hold_natively_still_log():
    line = JsonFormatter().format(record(0, big=2**70, odd={1, 2}.__class__, text="é"))
    entry = json.loads(line)
    assert entry["big"] == 2**70
    assert entry["text"] == "é"
    assert entry["odd"] == "<class 'set'>"
