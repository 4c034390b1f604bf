"""A top-level member of a JSON object body, found without parsing the body.

The osquery endpoints authenticate with a member of the body (``node_key``, or
``enroll_secret`` to enroll). To refuse a stranger before paying for the whole body,
the member is looked for among the object's leading members (a gzip body's first
bytes) and its trailing ones, skipping only scalar members on the way: osquery writes
``node_key`` first in compressed log bodies and config requests, and last in
uncompressed log bodies (its JSON helper re-adds the key, and removing a member moves
the object's last member into its place). A member that is not found this way is left
to the full parse.

What a scan finds is only ever used to refuse: a request it lets through is parsed and
authenticated as before, by what the parser reads (a body naming the key twice keeps the
last, as Python's dict does; the leading scan sees the first and may refuse it).
"""

from __future__ import annotations

import json
import re
from typing import Any

MISSING = object()  # the member was not found by the scan

_SPACE = re.compile(r"[ \t\n\r]*")
_SCALAR = json.JSONDecoder(strict=True)
_scanstring = json.decoder.scanstring  # type: ignore[attr-defined]


def _text(data: bytes) -> str:
    # a cut-off last character becomes U+FFFD, which no scanned string ends with
    return data.decode("utf-8", "replace")


def leading_member(data: bytes, name: str) -> Any:
    """The value of member ``name`` among the leading scalar members of the object that
    ``data`` (a body, or its first bytes) starts; MISSING when a nested value, the end of
    ``data`` or anything unexpected comes first."""
    text = _text(data)
    at = _SPACE.match(text).end()
    if text[at : at + 1] != "{":
        return MISSING
    at += 1
    while True:
        at = _SPACE.match(text, at).end()
        if text[at : at + 1] != '"':
            return MISSING
        try:
            key, at = _scanstring(text, at + 1, True)
            at = _SPACE.match(text, at).end()
            if text[at : at + 1] != ":":
                return MISSING
            at = _SPACE.match(text, at + 1).end()
            if text[at : at + 1] in ("", "[", "{"):
                return MISSING
            value, at = _SCALAR.raw_decode(text, at)
        except ValueError:  # includes json.JSONDecodeError
            return MISSING
        if key == name:
            return value
        at = _SPACE.match(text, at).end()
        if text[at : at + 1] != ",":
            return MISSING
        at += 1


def trailing_member(data: bytes, name: str) -> Any:
    """The value of member ``name`` among the trailing string members of the object that
    ``data`` (a body, or its last bytes) ends; MISSING when another kind of value, the
    start of ``data`` or anything unexpected comes first."""
    text = _text(data)
    at = _space_before(text, len(text))
    if text[at - 1 : at] != "}":
        return MISSING
    at -= 1
    while True:
        value, at = _string_before(text, at)
        if value is MISSING:
            return MISSING
        at = _space_before(text, at)
        if text[at - 1 : at] != ":":
            return MISSING
        key, at = _string_before(text, at - 1)
        if key is MISSING:
            return MISSING
        if key == name:
            return value
        at = _space_before(text, at)
        if text[at - 1 : at] != ",":
            return MISSING
        at -= 1


def _string_before(text: str, end: int) -> tuple[Any, int]:
    """The JSON string that ends (white space aside) just before ``end``, and where it
    starts; (MISSING, end) when there is none."""
    close = _space_before(text, end) - 1
    if close < 0 or text[close] != '"':
        return MISSING, end
    # the opening quote: the nearest quote before that is not escaped (preceded by an even
    # number of backslashes); inside a JSON string every quote is escaped
    at = close
    while True:
        at = text.rfind('"', 0, at)
        if at < 0:
            return MISSING, end
        slash = at
        while slash > 0 and text[slash - 1] == "\\":
            slash -= 1
        if (at - slash) % 2 == 0:
            break
    try:
        value, stop = _scanstring(text, at + 1, True)
    except ValueError:
        return MISSING, end
    if stop != close + 1:
        return MISSING, end
    return value, at


def _space_before(text: str, end: int) -> int:
    """Where the white space that ends just before ``end`` starts."""
    while end > 0 and text[end - 1] in " \t\n\r":
        end -= 1
    return end
