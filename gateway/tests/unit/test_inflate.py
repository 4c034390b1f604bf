"""Compressed bodies: every gzip member is read, or the body is refused."""

import gzip
import zlib

import pytest

from flock_gateway.api.body import inflate
from flock_gateway.errors import BadRequest, PayloadTooLarge


def test_every_gzip_member_is_read():
    body = gzip.compress(b'[{"a": 1},') + gzip.compress(b'{"b": 2}]')
    assert inflate(body, "gzip", 1 << 20) == b'[{"a": 1},{"b": 2}]'
    many = b"".join(gzip.compress(b"x") for _ in range(50))
    assert inflate(many, "gzip", 1 << 20) == b"x" * 50


@pytest.mark.parametrize(
    ("body", "encoding"),
    [
        (gzip.compress(b"[]") + b"junk", "gzip"),
        (gzip.compress(b"[]") + b"\x00" * 8, "gzip"),
        (gzip.compress(b"[]") + b"\x1f\x8b", "gzip"),
        (gzip.compress(b"[]") + gzip.compress(b"[]")[:-3], "gzip"),
        (gzip.compress(b"[]")[:-1], "gzip"),
        (zlib.compress(b"[]") + b"x", "deflate"),
        (zlib.compress(b"[]") + zlib.compress(b"[]"), "deflate"),
    ],
)
def test_trailing_or_truncated_data_is_refused(body, encoding):
    with pytest.raises(BadRequest):
        inflate(body, encoding, 1 << 20)


def test_the_output_bound_covers_all_members():
    member = gzip.compress(b"0" * 600_000)
    assert len(inflate(member, "gzip", 1_000_000)) == 600_000
    with pytest.raises(PayloadTooLarge):
        inflate(member + member, "gzip", 1_000_000)
