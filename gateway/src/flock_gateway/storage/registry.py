"""Agent registry: index ``<prefix>-agents``, one document per agent.

* ``_id`` is the username in lower case: usernames differing only by case are one
  identity (the record keeps the spelling first registered). Records written before this
  rule, under a mixed-case ``_id``, are still found by their exact name.
* Lookups are by document id (exact, realtime GET), never through a text query, so one
  agent's token can never authenticate a different, similar-looking username.
* One more document, ``_id`` = ``GENERATION_ID``, counts changes that invalidate
  credentials (revocation, re-keying, rename): its version is the registry's generation,
  which the gateway's auth caches compare (see :class:`flock_gateway.auth.AuthCache`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from elasticsearch import ConflictError, Elasticsearch, NotFoundError, helpers

from ..auth import Agent, username_key
from ..documents import iso
from ..fields import FLOCK_AGENT
from .errors import translate_errors

GENERATION_ID = "__generation__"


class AlreadyRegistered(Exception):
    pass


class UnknownAgent(Exception):
    pass


def _agent(source: dict[str, Any], hit: dict[str, Any] | None = None) -> Agent:
    hit = hit or {}
    return Agent(
        username=source["username"],
        name=source.get("name", ""),
        token_hash=source["token_hash"],
        source=source.get("source", FLOCK_AGENT),
        created=source.get("created"),
        host_identifier=source.get("host_identifier"),
        last_seen=source.get("last_seen"),
        reenroll_allowed=bool(source.get("reenroll_allowed", False)),
        reenrollments=int(source.get("reenrollments", 0)),
        doc_id=hit.get("_id"),
        seq_no=hit.get("_seq_no"),
        primary_term=hit.get("_primary_term"),
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
            self.client.create(index=self.index, id=username_key(username), document=doc)
        except ConflictError:
            raise AlreadyRegistered(username) from None
        return _agent(doc)

    def _id(self, username: str) -> str | None:
        """The document id of ``username``'s record (lower case, or a legacy exact id)."""
        agent = self.get(username)
        return agent.doc_id if agent is not None else None

    @translate_errors
    def rekey(self, agent: Agent, token_hash: str, **fields: Any) -> None:
        """Give ``agent`` a new token, only if its record is still the one that was read
        (``AlreadyRegistered`` otherwise): of two racing re-keyings exactly one wins."""
        doc_id = agent.doc_id or username_key(agent.username)
        try:
            self.client.update(
                index=self.index,
                id=doc_id,
                doc={"token_hash": token_hash, **fields},
                if_seq_no=agent.seq_no,
                if_primary_term=agent.primary_term,
            )
        except (ConflictError, NotFoundError):
            raise AlreadyRegistered(agent.username) from None
        self.bump_generation()

    @translate_errors
    def get(self, username: str) -> Agent | None:
        key = username_key(username)
        for doc_id in dict.fromkeys((key, username)):
            if doc_id == GENERATION_ID:
                return None
            try:
                resp = self.client.get(index=self.index, id=doc_id)
            except NotFoundError:
                continue
            return _agent(resp["_source"], resp)
        return None

    @translate_errors
    def touch(self, agent: Agent, when: str, **fields: Any) -> None:
        """Record that the agent authenticated (``last_seen``)."""
        self.client.update(
            index=self.index,
            id=agent.doc_id or username_key(agent.username),
            doc={"last_seen": when, **fields},
            retry_on_conflict=3,
        )

    @translate_errors
    def allow_reenroll(self, username: str) -> None:
        doc_id = self._id(username)
        if doc_id is None:
            raise UnknownAgent(username)
        self.client.update(index=self.index, id=doc_id, doc={"reenroll_allowed": True})

    @translate_errors
    def generation(self) -> int:
        try:
            resp = self.client.get(index=self.index, id=GENERATION_ID, source=False)
        except NotFoundError:
            return 0
        return int(resp["_version"])

    @translate_errors
    def bump_generation(self) -> None:
        self.client.index(index=self.index, id=GENERATION_ID, document={"username": GENERATION_ID})

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
        agents = [_agent(hit["_source"]) for hit in hits if hit["_id"] != GENERATION_ID]
        return iter(sorted(agents, key=lambda a: a.username))

    @translate_errors
    def rename(self, username: str, name: str) -> None:
        doc_id = self._id(username)
        if doc_id is None:
            raise UnknownAgent(username)
        self.client.update(index=self.index, id=doc_id, doc={"name": name})
        self.bump_generation()

    @translate_errors
    def revoke(self, username: str) -> None:
        doc_id = self._id(username)
        if doc_id is None:
            raise UnknownAgent(username)
        try:
            self.client.delete(index=self.index, id=doc_id)
        except NotFoundError:
            raise UnknownAgent(username) from None
        self.bump_generation()
