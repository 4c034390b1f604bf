"""What the current-state index (``<prefix>-state``) sheds: old tombstones, and the
state of revoked hosts.

The index is not dated and never deleted: its present rows are what is true now,
however old. Two kinds of its documents stop being true:

* **Tombstones** (rows a ``removed`` line or a newer snapshot took away) are kept only
  as long as a late resend could still be stored, the retention period.
* **A revoked host's rows.** ``flock-gateway agents revoke`` frees the host's name for
  another laptop (or retires it); the rows its old credential sent must not go on
  standing for the name in the "now" panels. The command runs with the gateway's own
  credentials, which may write the state but never read or delete it, so it only writes
  a *revocation* document (:func:`record_revocation`); the daily ``prune``, whose user
  may read and delete the state, then deletes that host's documents the gateway
  received before the revocation took effect (:func:`sweep_revocations`).

Both are read by scroll and deleted by bulk rather than ``_delete_by_query``, which the
node has only with its reindex module. Each document is deleted at the version it was
found at (``external_gte``): one a newer line wrote again meanwhile is left alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from elasticsearch import ConflictError, Elasticsearch, helpers

from .. import fields
from ..documents import iso
from ..indices import IndexNames
from ..state import REVOCATION_IDS, per_host_id
from .errors import translate_errors

PAGE = 1000
# longer than the state index's refresh interval
SETTLED = timedelta(minutes=1)


def tombstone_query(cutoff: date) -> dict[str, Any]:
    """The current-state tombstones stamped before ``cutoff`` (a UTC day)."""
    return {
        "bool": {
            "filter": [
                {"term": {f"{fields.GATEWAY}.{fields.KIND}": fields.STATE_ROW}},
                {"term": {f"{fields.GATEWAY}.{fields.PRESENT}": False}},
                {"range": {fields.TIMESTAMP: {"lt": cutoff.isoformat()}}},
            ]
        }
    }


@translate_errors
def prune_tombstones(client: Elasticsearch, names: IndexNames, cutoff: date, dry_run: bool) -> int:
    """Delete (or, ``dry_run``, count) the tombstones older than ``cutoff``: a line older
    than that is refused as expired, so none of them is needed any more."""
    if not client.indices.exists(index=names.state):
        return 0
    return _delete_matching(client, names.state, tombstone_query(cutoff), dry_run)


@translate_errors
def record_revocation(
    client: Elasticsearch, names: IndexNames, username: str, effective: datetime
) -> None:
    """Note that ``username``'s credential stops working everywhere at ``effective``: what
    the gateway received for it before then is swept by the next ``prune``.

    One document per host, versioned by the time in milliseconds: the newest revocation
    wins, and it covers everything an older one did."""
    gateway = {
        fields.USERNAME: username,
        fields.KIND: fields.STATE_REVOCATION,
        fields.REVOKED_AT: iso(effective),
    }
    # a conflict: a later revocation of the name is already recorded
    with contextlib.suppress(ConflictError):
        client.index(
            index=names.state,
            id=per_host_id(username, REVOCATION_IDS),
            document={fields.TIMESTAMP: iso(effective), fields.GATEWAY: gateway},
            version=int(effective.timestamp() * 1000),
            version_type="external",
        )


def revocation_effective(auth_cache_ttl: float, now: datetime | None = None) -> datetime:
    """When a credential revoked now has stopped working in every worker."""
    return (now or datetime.now(tz=UTC)) + timedelta(seconds=auth_cache_ttl)


def revoked_hosts_query(username: str, effective: str) -> dict[str, Any]:
    """The state documents of ``username`` the gateway received before ``effective``:
    its rows and tombstones (by the request that wrote them) and its host document (by
    when it was last seen)."""
    before = {"lt": effective}
    return {
        "bool": {
            "filter": [{"term": {f"{fields.GATEWAY}.{fields.USERNAME}": username}}],
            "should": [
                {
                    "bool": {
                        "filter": [
                            {"term": {f"{fields.GATEWAY}.{fields.KIND}": fields.STATE_ROW}},
                            {"range": {f"{fields.GATEWAY}.{fields.RECEIVED_AT}": before}},
                        ]
                    }
                },
                {
                    "bool": {
                        "filter": [
                            {"term": {f"{fields.GATEWAY}.{fields.KIND}": fields.STATE_HOST}},
                            {"range": {f"{fields.GATEWAY}.{fields.LAST_SEEN}": before}},
                        ]
                    }
                },
            ],
            "minimum_should_match": 1,
        }
    }


@translate_errors
def sweep_revocations(
    client: Elasticsearch, names: IndexNames, dry_run: bool, now: datetime | None = None
) -> int:
    """Delete (or, ``dry_run``, count) each revoked host's documents from before its
    revocation; then the revocation itself, once it has been in effect for ``SETTLED``
    (a credential may work for ``auth_cache_ttl`` after the command, and what it wrote
    last is searchable a refresh later: until then the revocation stays for next time)."""
    if not client.indices.exists(index=names.state):
        return 0
    now = now or datetime.now(tz=UTC)
    query = {"term": {f"{fields.GATEWAY}.{fields.KIND}": fields.STATE_REVOCATION}}
    revocations = list(_scan(client, names.state, query, source=[fields.GATEWAY]))
    deleted = 0
    for hit in revocations:
        gateway = hit["_source"][fields.GATEWAY]
        effective = gateway[fields.REVOKED_AT]
        hosts = revoked_hosts_query(gateway[fields.USERNAME], effective)
        deleted += _delete_matching(client, names.state, hosts, dry_run)
        if not dry_run and datetime.fromisoformat(effective) + SETTLED <= now:
            _delete_page(client, [_delete_action(names.state, hit)])
    return deleted


def _scan(
    client: Elasticsearch, index: str, query: dict[str, Any], source: list[str] | bool = False
) -> Iterator[dict[str, Any]]:
    return helpers.scan(
        client,
        index=index,
        query={"query": query, "version": True, "_source": source},
        size=PAGE,
        preserve_order=False,
    )


def _delete_matching(
    client: Elasticsearch, index: str, query: dict[str, Any], dry_run: bool
) -> int:
    if dry_run:
        return int(client.count(index=index, query=query)["count"])
    deleted = 0
    page: list[dict[str, Any]] = []
    for hit in _scan(client, index, query):
        page.append(_delete_action(index, hit))
        if len(page) == PAGE:
            deleted += _delete_page(client, page)
            page = []
    if page:
        deleted += _delete_page(client, page)
    return deleted


def _delete_action(index: str, hit: dict[str, Any]) -> dict[str, Any]:
    return {
        "delete": {
            "_index": index,
            "_id": hit["_id"],
            "version": hit["_version"],
            "version_type": "external_gte",
        }
    }


def _delete_page(client: Elasticsearch, page: list[dict[str, Any]]) -> int:
    resp = client.bulk(operations=page, filter_path="items.*.status")
    return sum(1 for item in resp.get("items", []) if item["delete"]["status"] == 200)
