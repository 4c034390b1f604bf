"""The subset of Kibana's KQL the Flock panels use, translated to Elasticsearch query DSL the
way Kibana's own KQL compiler (``@kbn/es-query``, ``toElasticsearchQuery``) translates it.

Supported, and what each becomes:

* ``field : value`` (unquoted) -> ``match`` on the field; ``field : "text"`` (quoted) ->
  ``match_phrase``; a value with ``*`` -> ``wildcard`` on the field, ``field : *`` ->
  ``exists``. Kibana wraps each in a ``bool`` ``should`` with ``minimum_should_match: 1``
  (one field here, so the same hits); so does this module.
* ``field < v``, ``<=``, ``>``, ``>=`` -> ``range`` with ``lt``/``lte``/``gt``/``gte``; a
  date value such as ``"now-7d"`` is Elasticsearch date math, evaluated by the node (Kibana
  passes it through the same way).
* ``a and b`` -> ``bool.filter``; ``a or b`` -> ``bool.should`` (``minimum_should_match:
  1``); ``not a`` -> ``bool.must_not``; parentheses group. ``and`` binds tighter than
  ``or``, as in KQL. Keywords are case-insensitive.

Not supported (an error, never a guess): nested field queries (``field:{...}``), value
lists (``field:(a or b)``), field wildcards (``data.*: x``), escapes inside unquoted
values. ``query_string`` is not used anywhere: its syntax differs from KQL's.
"""

from __future__ import annotations

import re
from typing import Any


class KqlUnsupported(ValueError):
    """The KQL uses syntax outside the subset this module translates."""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lparen>\()|(?P<rparen>\))
        |(?P<op><=|>=|<|>|:)
        |(?P<quoted>"(?:[^"\\]|\\.)*")
        |(?P<word>[^\s()<>:"]+)
    )""",
    re.VERBOSE,
)
_RANGE = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise KqlUnsupported(f"cannot read KQL at {text[pos:]!r}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise KqlUnsupported(f"KQL ends early: {self.text!r}")
        self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok and tok[0] == "word" and tok[1].lower() == word:
            self.i += 1
            return True
        return False

    def parse(self) -> dict[str, Any]:
        node = self.or_expr()
        if self.peek() is not None:
            raise KqlUnsupported(f"unexpected {self.peek()[1]!r} in {self.text!r}")
        return node

    def or_expr(self) -> dict[str, Any]:
        parts = [self.and_expr()]
        while self.keyword("or"):
            parts.append(self.and_expr())
        if len(parts) == 1:
            return parts[0]
        return {"bool": {"should": parts, "minimum_should_match": 1}}

    def and_expr(self) -> dict[str, Any]:
        parts = [self.not_expr()]
        while self.keyword("and"):
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else {"bool": {"filter": parts}}

    def not_expr(self) -> dict[str, Any]:
        if self.keyword("not"):
            return {"bool": {"must_not": self.not_expr()}}
        return self.primary()

    def primary(self) -> dict[str, Any]:
        kind, value = self.take()
        if kind == "lparen":
            node = self.or_expr()
            if self.take()[0] != "rparen":
                raise KqlUnsupported(f"unbalanced parentheses in {self.text!r}")
            return node
        if kind != "word":
            raise KqlUnsupported(f"expected a field, got {value!r} in {self.text!r}")
        field = value
        if "*" in field:
            raise KqlUnsupported(f"field wildcards are not translated: {field!r}")
        op_kind, op = self.take()
        if op_kind != "op":
            raise KqlUnsupported(f"expected ':' or a comparison after {field!r}")
        val_kind, raw = self.take()
        if val_kind not in {"word", "quoted"}:
            raise KqlUnsupported(f"value lists and nested queries are not translated: {raw!r}")
        quoted = val_kind == "quoted"
        text = _unquote(raw) if quoted else raw
        if "\\" in raw and not quoted:
            raise KqlUnsupported(f"escapes in unquoted values are not translated: {raw!r}")
        if op != ":":
            return {"range": {field: {_RANGE[op]: text}}}
        if not quoted and text == "*":
            return _one_field({"exists": {"field": field}})
        if not quoted and "*" in text:
            return _one_field({"wildcard": {field: {"value": text}}})
        if quoted:
            return _one_field({"match_phrase": {field: text}})
        return _one_field({"match": {field: text}})


def _unquote(raw: str) -> str:
    return re.sub(r"\\(.)", r"\1", raw[1:-1])


def _one_field(query: dict[str, Any]) -> dict[str, Any]:
    return {"bool": {"should": [query], "minimum_should_match": 1}}


def to_es_query(kql: str) -> dict[str, Any]:
    """The Elasticsearch query of a KQL string; ``match_all`` for an empty one."""
    if not kql.strip():
        return {"match_all": {}}
    return _Parser(kql).parse()
