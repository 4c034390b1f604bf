"""Row ids must not change when the gateway is upgraded (a batch resent across an upgrade
must still be stored once): canonical() is the id scheme's text, json.dumps's spelling."""

import json

import pytest

from flock_gateway.documents import canonical


def reference(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize(
    "value",
    [
        {"name": "apps", "columns": {"path": "/Applications/Café.app", "z": "ユーザー"}},
        {"b": 1, "a": [1, {"d": 2, "c": None}], "é": True, "E": False, "_": "🦆"},
        {"ctl": "tab\there\nnl\x00\x1f\x7f", "q": 'a "quote" \\ back', "sep": "\u2028"},
        {"ints": [0, -1, 2**63 - 1, -(2**63)], "floats": [0.5, 1.25, 123456.789, 1e15, 0.001]},
        {"big": 2**64 + 7, "nested": {"k": -(2**70)}},
        ["snapshot", "ab" * 32, 3, {"pid": "1", "name": "launchd"}],
        {"": "", "1": 1, "10": 10, "9": 9, "aB": "x", "Ab": "y"},
    ],
)
def test_same_text_as_the_id_scheme_definition(value):
    assert canonical(value) == reference(value)
