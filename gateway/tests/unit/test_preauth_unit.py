"""Bounded cost before authentication, where no Elasticsearch is needed: gzip members,
inflation that stops at its cap, the credential scans and the accelerator's guards."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap
import zlib

import pytest

from flock_gateway import accelerator
from flock_gateway.api.body import MAX_GZIP_MEMBERS, inflated
from flock_gateway.api.key_scan import MISSING, leading_member, trailing_member
from flock_gateway.errors import BadRequest, PayloadTooLarge

KEY = "host-1:0123456789abcdef"


def test_gzip_members_are_capped():
    member = gzip.compress(b"x")
    assert b"".join(inflated(member * MAX_GZIP_MEMBERS, "gzip", 1 << 20)) == b"x" * 64
    with pytest.raises(BadRequest, match=f"more than {MAX_GZIP_MEMBERS} gzip members"):
        b"".join(inflated(member * (MAX_GZIP_MEMBERS + 1), "gzip", 1 << 20))


def test_many_empty_members_are_refused_at_the_cap_not_read_to_the_end():
    # 150,000 members, then garbage: the cap answers before the garbage is reached
    body = gzip.compress(b"", mtime=0) * 150_000 + b"garbage"
    with pytest.raises(BadRequest, match="gzip members"):
        b"".join(inflated(body, "gzip", 1 << 20))


def test_inflation_stops_at_the_cap():
    bomb = gzip.compress(b"\0" * (8 << 20))  # 8 MiB of zeros in 8 KiB
    produced: list[int] = []

    def drain() -> None:
        for chunk in inflated(bomb, "gzip", 1 << 20):
            produced.append(len(chunk))

    with pytest.raises(PayloadTooLarge):
        drain()
    assert sum(produced) <= 1 << 20


def test_a_consumer_that_stops_early_inflates_only_that_far():
    bomb = gzip.compress(b"\0" * (8 << 20))
    first = next(inflated(bomb, "gzip", 8 << 20))
    assert 0 < len(first) <= 256 * 1024


def test_deflate_and_gzip_bodies_inflate_the_same():
    text = json.dumps({"node_key": KEY, "data": list(range(20_000))}).encode()
    assert b"".join(inflated(zlib.compress(text), "deflate", 1 << 22)) == text
    assert b"".join(inflated(gzip.compress(text), "gzip", 1 << 22)) == text


# How osquery's tls plugins write their bodies: node_key first in compressed log bodies
# and config requests, last in uncompressed log bodies (its JSON helper re-adds the key,
# and removing a member moves the last member into its place).
OSQUERY_ORDERS = [
    {"node_key": KEY, "log_type": "result", "data": [{"name": "x", "columns": {"a": "}"}}]},
    {"data": [{"name": "x", "columns": {"a": '"node_key":"no"'}}], "log_type": "result",
     "node_key": KEY},
    {"node_key": KEY},
    {"enroll_secret": "s", "host_identifier": "h", "platform_type": "9",
     "host_details": {"a": {}}, "node_key": ""},
]  # fmt: skip


@pytest.mark.parametrize("body", OSQUERY_ORDERS)
@pytest.mark.parametrize("indent", [None, 2])
def test_the_scans_find_what_the_parser_reads(body, indent):
    text = json.dumps(body, indent=indent).encode()
    for name, value in body.items():
        found = leading_member(text, name)
        if found is MISSING:
            found = trailing_member(text, name)
        if name in ("node_key", "enroll_secret"):
            assert found == value, (name, text)
        assert found in (MISSING, value)


def test_escapes_and_unicode_in_scanned_strings():
    for value in ['a"b', "a\\", 'a\\"', "é\u2028", "\\\\\\"]:
        text = json.dumps({"data": [], "node_key": value}).encode()
        assert trailing_member(text, "node_key") == value
        text = json.dumps({"node_key": value, "data": []}, ensure_ascii=False).encode()
        assert leading_member(text, "node_key") == value


@pytest.mark.parametrize(
    "text",
    [
        b'{"data": [], "node_key": "k", "x": {}}',  # between nested values
        b'["node_key", "k"]',
        b'{"a": {"node_key": "k"}}',  # not a top-level member
        b'{"node_key": "k',  # cut off
        b"",
        b'{"node_key": {"a": "k"}}',
    ],
)
def test_what_the_scans_cannot_place_is_left_to_the_parser(text):
    assert leading_member(text, "node_key") is MISSING
    assert trailing_member(text, "node_key") is MISSING


def test_a_nested_node_key_before_the_top_level_one_is_not_taken():
    text = b'{"data": [{"node_key": "inner"}], "node_key": "outer"}'
    assert leading_member(text, "node_key") is MISSING
    assert trailing_member(text, "node_key") == "outer"


def test_scalar_members_are_skipped_to_the_key():
    text = b'{"a": 1.5, "b": null, "c": true, "log_type": "r", "node_key": "k", "data": []}'
    assert leading_member(text, "node_key") == "k"
    assert trailing_member(b'{"data": [], "node_key": "k", "n": "1", "m": "2"}', "node_key") == "k"


@pytest.mark.skipif(not accelerator.available(), reason="the compiled accelerator is not built")
@pytest.mark.parametrize(
    "body",
    [
        b"[[" + b"0," * 100_000 + b"0]]",
        b"[" + b"{}," * 100_000 + b"{}]",
        b"[" * 100 + b"]" * 100,
        json.dumps([{"a": [1, 2]}]).encode(),
    ],
)
def test_the_accelerator_declines_bodies_it_could_never_take(body):
    assert accelerator.parse(body, wrapped=False) is None
    assert accelerator.parse(body, wrapped=True) is None


@pytest.mark.skipif(not accelerator.available(), reason="the compiled accelerator is not built")
def test_the_accelerator_builds_no_tree_for_a_body_of_zeros():
    # a 4 MiB [[0,0,…]]: each value would take 32 bytes in a tree (64 MiB); measured in a
    # child process, whose peak is its own
    script = textwrap.dedent(
        """
        import resource
        from flock_gateway import accelerator
        body = b"[[" + b"0," * (2 << 20) + b"0]]"
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert accelerator.parse(body, wrapped=False) is None
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
        """
    )
    grown_kib = int(subprocess.check_output([sys.executable, "-c", script], text=True))
    assert grown_kib < 4 * 1024
