"""Input validation: JSON bodies, usernames, display names and result items.

Everything here raises :class:`~flock_gateway.errors.BadRequest` (400) with a message the
agent can show; nothing a client sends can make it raise anything else.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

import orjson

from .auth import USERNAME_RE
from .errors import BadRequest

MAX_NAME_LEN = 200
MAX_DEPTH = 8  # objects/arrays nested deeper than this are refused
MAX_KEY_LEN = 256
MAX_KEYS_PER_OBJECT = 1000
# Elasticsearch takes integers up to unsigned 64 bits; a longer one is refused on every
# resend (and past 1000 digits fails the whole bulk request), so it is refused here.
MAX_INT = 2**64

# A result line's fields whose JSON type is fixed by the index template. A value of another
# type would make Elasticsearch refuse the document, so it is refused here instead.
RESULT_HOST_FIELDS = ("hostIdentifier", "host_uuid")  # strings; one must name the sender
RESULT_STRING_FIELDS = ("name", "calendarTime", "action")
RESULT_INT_FIELDS = ("epoch", "counter", "unixTime")  # integers, or strings of digits
RESULT_OBJECT_FIELDS = ("columns", "decorations")  # objects of scalars
_SCALARS = (str, int, float, bool, type(None))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# orjson parses integers beyond 64 bits as floats (they are all at least 2**63 in
# magnitude): a body holding such a float is parsed again by the standard library, which
# keeps integers exact (and a real float that large parses the same either way).
_FLOAT_INT_LIMIT = float(2**63)
# What a value parsed by orjson may be without any further check: orjson refuses invalid
# Unicode, and its integers are within 64 bits.
_PLAIN = frozenset({str, int, bool, type(None)})


# Field names already found acceptable, shared by all requests of the process: agents send
# the same few dozen names over and over, so each is checked once. Bounded, so names a
# client makes up cannot grow it without limit (past the bound, names are checked per
# request as before).
_KEYS_OK: set[str] = set()
_KEYS_OK_MAX = 10_000


class _Reparse(Exception):
    """orjson's reading of the body differs from the standard library's."""


def parse_json(body: bytes) -> Any:
    """Parse a request body as strict JSON (UTF-8/16/32, no NaN/Infinity).

    orjson parses UTF-8 bodies several times faster and refuses what the standard library
    would let through only to have it refused below (lone surrogates, NaN, infinity), so
    its strings need no second check; anything it refuses, or reads differently (integers
    beyond 64 bits), gets the standard library's verdict, so the answers are the same
    either way.
    """
    if not body or (body[:1].isspace() and not body.strip()):
        raise BadRequest("Empty request body")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    else:
        try:
            _check_parsed(value)
        except _Reparse:
            pass
        else:
            return value
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise BadRequest("Invalid JSON object: nested too deeply") from None
    except (ValueError, UnicodeDecodeError):
        # json.JSONDecodeError and UnicodeDecodeError are both ValueErrors; also covers
        # integers longer than Python's digit limit.
        raise BadRequest("Invalid JSON object") from None
    check_structure(value)
    return value


def parse_object(body: bytes) -> dict[str, Any]:
    """parse_json for a body that must be one JSON object."""
    value = parse_json(body)
    if not isinstance(value, dict):
        raise BadRequest("Invalid JSON object")
    return value


def _check_parsed(value: Any) -> None:
    """check_structure for what orjson parsed: the same limits, scanning each container's
    values at C speed (``set(map(type, ...))``) and looking closer only at containers and
    floats; raises _Reparse at a float that may be an integer beyond 64 bits. Walks the
    tree a level at a time, holding one reference per container of the next level."""
    kind = type(value)
    if kind is not dict and kind is not list:
        _check_float(value)
        return
    level: list[Any] = [value]
    keys_ok = _KEYS_OK
    own: set[str] = set()  # checked in this call, once the shared set is full
    plain = _PLAIN.issuperset
    for _depth in range(MAX_DEPTH):
        below: list[Any] = []
        for node in level:
            if type(node) is dict:
                if len(node) > MAX_KEYS_PER_OBJECT:
                    raise BadRequest(f"Invalid JSON object: more than {MAX_KEYS_PER_OBJECT} keys")
                if not keys_ok.issuperset(node):
                    for key in node:
                        if key not in keys_ok and key not in own:
                            _check_key(key)
                            (keys_ok if len(keys_ok) < _KEYS_OK_MAX else own).add(key)
                children: Iterable[Any] = node.values()
            else:
                children = node
            if plain(map(type, children)):
                continue
            for child in children:
                kind = type(child)
                if kind is dict or kind is list:
                    below.append(child)
                elif kind is float:
                    _check_float(child)
        if not below:
            return
        level = below
    raise BadRequest(f"Invalid JSON object: nested deeper than {MAX_DEPTH} levels")


def _check_float(value: Any) -> None:
    if type(value) is float:
        if not math.isfinite(value):
            raise BadRequest("Invalid JSON object: number out of range")
        if abs(value) >= _FLOAT_INT_LIMIT:
            raise _Reparse


def check_structure(value: Any, *, strings_checked: bool = False) -> None:
    """Iteratively check depth, key shape and string encodability of a parsed value.

    ``strings_checked``: the parser already refused strings that are not valid Unicode.
    Rows repeat the same keys, so each distinct key is checked once per call; scalars
    are checked where they are found instead of going through the stack.
    """
    _check_node(value, strings_checked)
    stack: list[tuple[Any, int]] = [(value, 0)]
    keys_ok: set[str] = set()
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            if depth >= MAX_DEPTH:
                raise BadRequest(f"Invalid JSON object: nested deeper than {MAX_DEPTH} levels")
            if len(node) > MAX_KEYS_PER_OBJECT:
                raise BadRequest(f"Invalid JSON object: more than {MAX_KEYS_PER_OBJECT} keys")
            children: Iterable[Any] = node.values()
            for key in node:
                if key not in keys_ok:
                    _check_key(key)
                    keys_ok.add(key)
        elif isinstance(node, list):
            if depth >= MAX_DEPTH:
                raise BadRequest(f"Invalid JSON object: nested deeper than {MAX_DEPTH} levels")
            children = node
        else:
            continue
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, depth + 1))
            elif kind is str:
                if not strings_checked:
                    _check_str(child)
            elif kind is not bool and child is not None:
                _check_node(child, strings_checked)
                if isinstance(child, dict | list):  # subclasses, from callers not parsers
                    stack.append((child, depth + 1))


def _check_node(node: Any, strings_checked: bool) -> None:
    """The checks of one scalar (containers are walked by check_structure)."""
    if isinstance(node, str):
        if not strings_checked:
            _check_str(node)
    elif isinstance(node, float):
        if not math.isfinite(node):
            # 1e309 parses as infinity, which JSON (and Elasticsearch) cannot carry
            raise BadRequest("Invalid JSON object: number out of range")
    elif isinstance(node, int) and not isinstance(node, bool) and not -MAX_INT < node < MAX_INT:
        raise BadRequest("Invalid JSON object: integer out of range")


def _check_str(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # lone surrogates (e.g. "\ud800") cannot be stored as UTF-8
        raise BadRequest("Invalid JSON object: string is not valid Unicode") from None


def _check_key(key: str) -> None:
    _check_str(key)
    if not key or not key.strip():
        raise BadRequest("Invalid JSON object: empty field name")
    if len(key) > MAX_KEY_LEN:
        raise BadRequest(f"Invalid JSON object: field name longer than {MAX_KEY_LEN}")
    if key.startswith(".") or key.endswith(".") or ".." in key:
        raise BadRequest(f"Invalid JSON object: field name {key[:64]!r} is not allowed")


def validate_username(value: Any) -> str:
    if value is None or value == "":
        raise BadRequest("You must provide a username")
    if not isinstance(value, str) or not USERNAME_RE.fullmatch(value):
        raise BadRequest(
            "Usernames must only contain letters, numbers, '-', or '_', start with a letter"
            " or number, and be at most 128 characters"
        )
    return value


def validate_name(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest("Name must be a string")
    _check_str(value)
    if len(value) > MAX_NAME_LEN:
        raise BadRequest(f"Name must be at most {MAX_NAME_LEN} characters")
    if not value.isprintable():
        raise BadRequest("Name must only contain printable characters")
    return value.strip()


def as_items(value: Any) -> list[dict[str, Any]]:
    """A body is one JSON object (original README) or an array of objects (Flock agent)."""
    if isinstance(value, dict):
        return [value]
    if not isinstance(value, list):
        raise BadRequest("Data is not an array")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise BadRequest(f"Item {i} is not an object")
    return value


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and value.strip().lstrip("-").isdigit()


_MISSING = object()


def validate_result_item(i: int, item: dict[str, Any], username: str) -> None:
    """Check one osquery result line: host, field types; raises BadRequest naming the
    first thing wrong."""
    get = item.get
    found = False
    for key in RESULT_HOST_FIELDS:
        host = get(key, _MISSING)
        if host is _MISSING:
            continue
        found = True
        if type(host) is not str or (host != username and host.lower() != username.lower()):
            raise BadRequest(f"Item {i} does not contain the correct hostIdentifier")
    if not found:
        raise BadRequest(f"Item {i} does not contain the correct hostIdentifier")
    for key in RESULT_STRING_FIELDS:
        value = get(key, "")
        if not isinstance(value, str):
            raise BadRequest(f"Item {i}: {key} must be a string")
    for key in RESULT_INT_FIELDS:
        value = get(key, 0)
        if type(value) is not int and not _is_int(value):
            raise BadRequest(f"Item {i}: {key} must be an integer")
    numerics = get("numerics", False)
    if not isinstance(numerics, bool) and numerics not in ("true", "false"):
        raise BadRequest(f"Item {i}: numerics must be a boolean")
    for key in RESULT_OBJECT_FIELDS:
        value = get(key, _MISSING)
        if value is not _MISSING:
            _check_scalar_object(i, key, value)
    if "snapshot" in item:
        rows = item["snapshot"]
        if not isinstance(rows, list):
            raise BadRequest(f"Item {i}: snapshot must be an array of objects")
        for row in rows:
            _check_scalar_object(i, "snapshot", row)


_SCALAR_TYPES = frozenset(_SCALARS)


def _check_scalar_object(i: int, key: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise BadRequest(f"Item {i}: {key} must be an object")
    if _SCALAR_TYPES.issuperset(map(type, value.values())):
        return  # exact scalar types (what parsers make): nothing to look at closer
    for column, cell in value.items():
        if not isinstance(cell, _SCALARS):
            raise BadRequest(f"Item {i}: {key}.{column[:64]} must be a string or number")


def validate_flock_log_item(i: int, item: dict[str, Any]) -> None:
    """Flock agent event log line: {"type", "timestamp" (ms), ["twig_ids"|"twig_id"]}."""
    if "type" not in item:
        raise BadRequest(f"Item {i} does not contain a type field")
    if "timestamp" not in item:
        raise BadRequest(f"Item {i} does not contain a timestamp field")
    if not isinstance(item["type"], str):
        raise BadRequest(f"Item {i}: type must be a string")
    if not _is_int(item["timestamp"]):
        raise BadRequest(f"Item {i}: timestamp must be an integer (milliseconds)")
    if item["type"] in ("enable_twig", "disable_twig") and "twig_id" not in item:
        raise BadRequest(f"Item {i} is about a twig, but does not contain a twig_id field")
