"""Agent registry: index ``<prefix>-agents``, one document per agent, ``_id`` = username.

Lookups are by document id (exact, realtime GET), never through a text query, so one
agent's token can never authenticate a different, similar-looking username.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from elasticsearch import ConflictError, Elasticsearch, NotFoundError, helpers

from ..auth import Agent
from ..documents import iso
from ..fields import FLOCK_AGENT
from .errors import translate_errors


class AlreadyRegistered(Exception):
    pass


class UnknownAgent(Exception):
    pass


def _agent(source: dict[str, Any]) -> Agent:
    return Agent(
        username=source["username"],
        name=source.get("name", ""),
        token_hash=source["token_hash"],
        source=source.get("source", FLOCK_AGENT),
        created=source.get("created"),
        host_identifier=source.get("host_identifier"),
    )


class Registry:
    def __init__(self, client: Elasticsearch, index: str) -> None:
        self.client = client
        self.index = index

    @translate_errors
    def register(
        self,
        username: str,
        name: str,
        token_hash: str,
        *,
        source: str = FLOCK_AGENT,
        host_identifier: str | None = None,
        host_details: dict[str, Any] | None = None,
    ) -> Agent:
        doc: dict[str, Any] = {
            "username": username,
            "name": name,
            "token_hash": token_hash,
            "created": iso(datetime.now(tz=UTC)),
            "source": source,
        }
        if host_identifier is not None:
            doc["host_identifier"] = host_identifier
        if host_details is not None:
            doc["host_details"] = host_details
        try:
            self.client.create(index=self.index, id=username, document=doc)
        except ConflictError:
            raise AlreadyRegistered(username) from None
        return _agent(doc)

    @translate_errors
    def replace_token(self, username: str, token_hash: str, **fields: Any) -> None:
        """Re-key an existing agent (osquery re-enrollment of the same host)."""
        self.client.update(
            index=self.index,
            id=username,
            doc={"token_hash": token_hash, **fields},
        )

    @translate_errors
    def get(self, username: str) -> Agent | None:
        try:
            resp = self.client.get(index=self.index, id=username)
        except NotFoundError:
            return None
        return _agent(resp["_source"])

    @translate_errors
    def list(self) -> Iterator[Agent]:
        """All agents (admin command: refreshes first so it sees the latest changes)."""
        self.client.indices.refresh(index=self.index)
        hits = helpers.scan(
            self.client,
            index=self.index,
            query={"query": {"match_all": {}}},
            preserve_order=False,
        )
        agents = [_agent(hit["_source"]) for hit in hits]
        return iter(sorted(agents, key=lambda a: a.username))

    @translate_errors
    def rename(self, username: str, name: str) -> None:
        try:
            self.client.update(index=self.index, id=username, doc={"name": name})
        except NotFoundError:
            raise UnknownAgent(username) from None

    @translate_errors
    def revoke(self, username: str) -> None:
        try:
            self.client.delete(index=self.index, id=username)
        except NotFoundError:
            raise UnknownAgent(username) from None
