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
