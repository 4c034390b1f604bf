"""parse_json takes orjson's fast path for most bodies; its answers must be the standard
library path's answers (value or 400), whichever parser ran."""

import json

import pytest

from flock_gateway.errors import BadRequest
from flock_gateway.validation import check_structure, parse_json

BODIES = [
    b'[{"name":"q","columns":{"path":"/Applications/Caf\\u00e9.app","v":"\xc3\xa9"}}]',
    b'{"a":1,"a":2,"b":[1.5,-0,0.1,1e300,-2.5e-300,true,false,null]}',
    b"[9223372036854775807, -9223372036854775808, 18446744073709551615]",
    b"[123456789012345678901234567890]",
    b'{"a":[{"b":18446744073709551616}],"c":1e19,"d":-9223372036854775809}',
    b"[1e19, -9.3e18, 9.2e18, 12345678901234567890.5]",
    b"[1e309]",
    b"[NaN]",
    b"[Infinity]",
    b'"\\ud800"',
    b'{"k":"\\udc00\\ud800"}',
    b'{"": 1}',
    b'{"a..b": 1}',
    b'{"x": "\xff"}',
    '[{"é": "utf-16"}]'.encode("utf-16"),
    b"\xef\xbb\xbf[1]",
    b"[" * 20 + b"]" * 20,
    b"[1,]",
    b'{"emoji":"\xf0\x9f\xa6\x86","ctl":"\\u0000\\u001f"}',
]

# Result-line shapes (an object of scalars and flat objects) are checked without the walk
# of the rest: at every depth around the limit, with what must still be looked at closer
# (a float, a bad name, too many names, one more level) in the row or in its columns.
ROWS = [
    b'{"name":"q","n":1,"columns":{"path":"/x","v":null}}',
    b'{"name":"q","columns":{"v":1e19}}',
    b'{"name":1e19,"columns":{"v":"x"}}',
    b'{"name":"q","columns":{"a..b":"x"}}',
    b'{"a..b":"q","columns":{"v":"x"}}',
    b'{"name":"q","columns":{"v":{"deeper":"x"}}}',
    b'{"name":"q","columns":{"v":["x"]}}',
    b'{"name":"q","columns":' + b"{%b}" % b",".join(b'"c%d":1' % i for i in range(1001)) + b"}",
]
BODIES += [b"[" * depth + row + b"]" * depth for row in ROWS for depth in range(4, 8)]


def reference(body: bytes):
    try:
        value = json.loads(body, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    except (ValueError, RecursionError):
        return "400"
    try:
        check_structure(value)
    except BadRequest:
        return "400"
    return value


@pytest.mark.parametrize("body", BODIES)
def test_same_answer_as_the_standard_library(body):
    try:
        got = parse_json(body)
    except BadRequest:
        got = "400"
    want = reference(body)
    assert got == want
    assert type(got) is type(want)
    if isinstance(want, list) and want and isinstance(want[0], int):
        assert [type(v) for v in got] == [type(v) for v in want]  # big ints stay ints
