import json

import pytest

from flock_gateway.errors import BadRequest
from flock_gateway.validation import (
    MAX_DEPTH,
    as_items,
    parse_json,
    validate_flock_log_item,
    validate_name,
    validate_result_item,
    validate_username,
)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"{",
        b"not json",
        b"\xff\xfe\x00garbage",
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": "\xc3\x28"}',  # invalid UTF-8 sequence
        b"[" * 100_000 + b"]" * 100_000,  # deeper than the parser's recursion limit
        b'{"a": ' + b"9" * 5000 + b"}",  # longer than Python's int digit limit
        b'{"a": "\\ud800"}',  # lone surrogate
        b'{"": 1}',
        b'{"a..b": 1}',
        b'{".a": 1}',
    ],
)
def test_parse_json_rejects(body):
    with pytest.raises(BadRequest):
        parse_json(body)


def test_parse_json_depth_limit():
    ok = {"a": 1}
    for _ in range(MAX_DEPTH - 1):
        ok = {"a": ok}
    assert parse_json(json.dumps(ok).encode())
    too_deep = {"a": ok}
    with pytest.raises(BadRequest, match="nested deeper"):
        parse_json(json.dumps(too_deep).encode())


def test_parse_json_accepts_utf16_and_huge_strings():
    assert parse_json('{"a": "é"}'.encode("utf-16")) == {"a": "é"}
    big = "x" * 2_000_000
    assert parse_json(json.dumps({"a": big}).encode())["a"] == big


@pytest.mark.parametrize(
    "username",
    ["UUID1", "but_they_can-have-dashes_and-underscores", "a" * 128, "0"],
)
def test_valid_usernames(username):
    assert validate_username(username) == username


@pytest.mark.parametrize(
    "username",
    [
        None,
        "",
        "usernames can't have spaces",
        "they_can't_have_apostrophers_EITHER",
        "a" * 129,
        "victim\n",
        "é",
        "a:b",
        "a*",
        12,
        ["a"],
    ],
)
def test_invalid_usernames(username):
    with pytest.raises(BadRequest):
        validate_username(username)


def test_names():
    assert validate_name(None) == ""
    assert validate_name(" Nick Fury ") == "Nick Fury"
    assert validate_name("Zoë 💻") == "Zoë 💻"
    for bad in ["a\nb", "\x00", "x" * 201, 5, {"a": 1}]:
        with pytest.raises(BadRequest):
            validate_name(bad)


def test_as_items():
    assert as_items({"a": 1}) == [{"a": 1}]
    assert as_items([]) == []
    with pytest.raises(BadRequest, match="not an array"):
        as_items("x")
    with pytest.raises(BadRequest, match="Item 1 is not an object"):
        as_items([{}, 1])


def _row(**kw):
    row = {
        "name": "os_version",
        "hostIdentifier": "host-1",
        "calendarTime": "Mon Dec  3 14:00:22 2018 UTC",
        "unixTime": 1543845622,
        "epoch": 0,
        "counter": 0,
        "numerics": False,
        "columns": {"version": "10.14.1", "major": "10"},
        "action": "added",
    }
    row.update(kw)
    return row


def test_result_item_ok():
    validate_result_item(0, _row(), "host-1")
    validate_result_item(0, _row(unixTime="1543845622"), "host-1")
    # older osquery (boost ptree JSON) sends every value as a string
    validate_result_item(
        0, _row(unixTime="1543845622", epoch="0", counter="12", numerics="false"), "host-1"
    )
    validate_result_item(0, {"host_uuid": "host-1", "other_arbitrary_data": "goes here"}, "host-1")
    validate_result_item(0, _row(snapshot=[{"a": "1"}, {"a": "2"}], action="snapshot"), "host-1")


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ({}, "hostIdentifier"),
        (_row(hostIdentifier="something_wrong"), "hostIdentifier"),
        (_row(hostIdentifier="host-10"), "hostIdentifier"),
        (_row(hostIdentifier="host"), "hostIdentifier"),
        (_row(host_uuid="other"), "hostIdentifier"),
        (_row(hostIdentifier=["host-1"]), "hostIdentifier"),
        (_row(name=5), "name must be a string"),
        (_row(unixTime="soon"), "unixTime"),
        (_row(unixTime=True), "unixTime"),
        (_row(counter=1.5), "counter"),
        (_row(numerics="yes"), "numerics"),
        (_row(numerics=1), "numerics"),
        (_row(columns="x"), "columns must be an object"),
        (_row(columns={"a": {"b": 1}}), "columns.a"),
        (_row(decorations=[1]), "decorations must be an object"),
        (_row(snapshot={"a": 1}), "snapshot"),
        (_row(snapshot=[{"a": [1]}]), "snapshot"),
    ],
)
def test_result_item_refused(row, match):
    with pytest.raises(BadRequest, match=match):
        validate_result_item(0, row, "host-1")


def test_flock_log_items():
    validate_flock_log_item(0, {"type": "server_enabled", "timestamp": 1570000000000})
    validate_flock_log_item(
        0, {"type": "twigs_enabled", "twig_ids": ["a"], "timestamp": 1570000000000}
    )
    validate_flock_log_item(0, {"type": "enable_twig", "twig_id": "a", "timestamp": 1})
    for bad, match in [
        ({"timestamp": 1}, "type"),
        ({"type": "x"}, "timestamp"),
        ({"type": "x", "timestamp": "yesterday"}, "timestamp"),
        ({"type": "enable_twig", "timestamp": 1}, "twig_id"),
        ({"type": 1, "timestamp": 1}, "type must be"),
    ]:
        with pytest.raises(BadRequest, match=match):
            validate_flock_log_item(0, bad)


@pytest.mark.parametrize(
    "body",
    [
        b'{"columns": {"a": 1e309}}',
        b'[{"x": -1e400}]',
        b'{"unixTime": 18446744073709551616}',
        b'{"x": -18446744073709551616}',
        b'{"x": ' + b"9" * 1200 + b"}",
    ],
)
def test_numbers_storage_cannot_take_are_refused(body):
    with pytest.raises(BadRequest):
        parse_json(body)


def test_numbers_in_range_pass():
    assert parse_json(b'{"a": 18446744073709551615, "b": -9223372036854775808, "c": 1e308}')


def test_field_names_are_checked_every_time_once_the_shared_cache_is_full(monkeypatch):
    from flock_gateway import validation

    monkeypatch.setattr(validation, "_KEYS_OK", set())
    monkeypatch.setattr(validation, "_KEYS_OK_MAX", 3)
    assert parse_json(b'[{"a": 1, "b": {"c": 2}}, {"a": 3}]')
    assert {"a", "b", "c"} == validation._KEYS_OK
    # full: new names are still checked (and not remembered), known ones still pass
    with pytest.raises(BadRequest, match="field name"):
        parse_json(b'{"a": 1, "x..y": 2}')
    assert parse_json(b'{"a": 1, "d": 2, "d2": {"d": 3}}') == {"a": 1, "d": 2, "d2": {"d": 3}}
    assert {"a", "b", "c"} == validation._KEYS_OK
    with pytest.raises(BadRequest, match="empty field name"):
        parse_json(b'{"": 1}')
