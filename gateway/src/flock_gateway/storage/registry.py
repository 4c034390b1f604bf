"""Agent registry: index ``<prefix>-agents``, one document per agent.

* ``_id`` is the username in lower case: usernames differing only by case are one
  identity (the record keeps the spelling first registered). Records written before this
  rule, under a mixed-case ``_id``, are still found by their exact name.
* Lookups are by document id (exact, realtime GET), never through a text query, so one
  agent's token can never authenticate a different, similar-looking username.
* One more document, ``_id`` = ``GENERATION_ID``, counts changes that invalidate
  credentials (revocation, re-keying, rename): its version is the registry's generation,
  and ``changed`` lists the names of its latest ``GENERATION_CHANGES`` bumps, one per
  bump, oldest first. The gateway's auth caches read it to forget what changed (see
  :class:`flock_gateway.auth.AuthCache`). Every change is written first and bumped after,
  so a cache that sees the bump reads the changed record.
* A Flock registration is ``pending`` from its creation until the gateway is about to
  deliver its token: only a pending record may be registered again (a retry after an
  answer that never reached the laptop).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from elasticsearch import ConflictError, Elasticsearch, NotFoundError, helpers

from ..auth import Agent, Generation, username_key
from ..documents import iso
from ..fields import FLOCK_AGENT
from ..state import SnapshotMark
from .errors import StorageUnavailable, translate_errors

GENERATION_ID = "__generation__"
# names the generation document keeps: a cache that missed more bumps than this since its
# last read forgets every record instead of the changed ones
GENERATION_CHANGES = 256
# concurrent bumps conflict (each writes the document it read): each retries this often
BUMP_ATTEMPTS = 30
# the record's member keeping each snapshot query's mark (state.SnapshotMark as a list)
SNAPSHOT_MARKS = "snapshot_marks"


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
        pending=bool(source.get("pending", False)),
        platform=source.get("platform"),
        os_version=source.get("os_version"),
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
        pending: bool = False,
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
        if pending:
            doc["pending"] = True
        try:
            resp = self.client.create(index=self.index, id=username_key(username), document=doc)
        except ConflictError:
            raise AlreadyRegistered(username) from None
        return _agent(doc, resp)

    @translate_errors
    def confirm(self, agent: Agent) -> None:
        """End ``agent``'s pending state (its token is about to be delivered), only if its
        record is still the one written (``AlreadyRegistered`` otherwise: a retry
        re-keyed it in the meantime)."""
        try:
            self.client.update(
                index=self.index,
                id=agent.doc_id or username_key(agent.username),
                doc={"pending": False},
                if_seq_no=agent.seq_no,
                if_primary_term=agent.primary_term,
            )
        except (ConflictError, NotFoundError):
            raise AlreadyRegistered(agent.username) from None

    def _id(self, username: str) -> str | None:
        """The document id of ``username``'s record (lower case, or a legacy exact id)."""
        agent = self.get(username)
        return agent.doc_id if agent is not None else None

    @translate_errors
    def rekey(self, agent: Agent, token_hash: str, **fields: Any) -> Agent:
        """Give ``agent`` a new token, only if its record is still the one that was read
        (``AlreadyRegistered`` otherwise): of two racing re-keyings exactly one wins.
        Returns the record as written."""
        doc_id = agent.doc_id or username_key(agent.username)
        try:
            resp = self.client.update(
                index=self.index,
                id=doc_id,
                doc={"token_hash": token_hash, **fields},
                if_seq_no=agent.seq_no,
                if_primary_term=agent.primary_term,
            )
        except (ConflictError, NotFoundError):
            raise AlreadyRegistered(agent.username) from None
        self.bump_generation(agent.username)
        known = {f.name for f in dataclasses.fields(Agent)}
        return dataclasses.replace(
            agent,
            token_hash=token_hash,
            doc_id=doc_id,
            seq_no=resp["_seq_no"],
            primary_term=resp["_primary_term"],
            **{k: v for k, v in fields.items() if k in known},
        )

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
    def set_os(self, agent: Agent, platform: str | None, os_version: str | None) -> None:
        """Keep the host's platform and OS version (as its latest os_version row says)."""
        self.client.update(
            index=self.index,
            id=agent.doc_id or username_key(agent.username),
            doc={"platform": platform, "os_version": os_version},
            retry_on_conflict=3,
        )

    @translate_errors
    def snapshot_marks(self, agent: Agent) -> tuple[dict[str, SnapshotMark], int, int]:
        """The host's snapshot marks (see :mod:`flock_gateway.state`), read now, and the
        record's sequence number and primary term for :meth:`set_snapshot_marks`."""
        resp = self.client.get(
            index=self.index,
            id=agent.doc_id or username_key(agent.username),
            source_includes=[SNAPSHOT_MARKS],
        )
        stored = resp["_source"].get(SNAPSHOT_MARKS)
        marks: dict[str, SnapshotMark] = {}
        if isinstance(stored, dict):
            for name, value in stored.items():
                mark = SnapshotMark.read(value)
                if mark is not None:
                    marks[name] = mark
        return marks, resp["_seq_no"], resp["_primary_term"]

    @translate_errors
    def set_snapshot_marks(
        self, agent: Agent, marks: dict[str, SnapshotMark], seq_no: int, primary_term: int
    ) -> None:
        """Record the queries' new marks, only if the record is still as read
        (StorageUnavailable otherwise: another request of the host changed them, and the
        agent's resend recomputes from the newer marks)."""
        try:
            self.client.update(
                index=self.index,
                id=agent.doc_id or username_key(agent.username),
                doc={SNAPSHOT_MARKS: {name: list(mark) for name, mark in marks.items()}},
                if_seq_no=seq_no,
                if_primary_term=primary_term,
            )
        except ConflictError:
            raise StorageUnavailable("snapshot marks changed meanwhile: send again") from None

    @translate_errors
    def allow_reenroll(self, username: str) -> None:
        doc_id = self._id(username)
        if doc_id is None:
            raise UnknownAgent(username)
        self.client.update(index=self.index, id=doc_id, doc={"reenroll_allowed": True})

    @translate_errors
    def generation(self) -> Generation:
        try:
            resp = self.client.get(index=self.index, id=GENERATION_ID)
        except NotFoundError:
            return Generation(0)
        changed = resp["_source"].get("changed") or []
        return Generation(int(resp["_version"]), tuple(str(key) for key in changed))

    @translate_errors
    def bump_generation(self, username: str) -> None:
        """Count one credential change of ``username`` (after the change is written)."""
        key = username_key(username)
        for _ in range(BUMP_ATTEMPTS):
            try:
                resp = self.client.get(index=self.index, id=GENERATION_ID)
            except NotFoundError:
                resp = None
            changed = list(resp["_source"].get("changed") or []) if resp is not None else []
            doc = {"username": GENERATION_ID, "changed": [*changed, key][-GENERATION_CHANGES:]}
            try:
                # conditional on the version read: each write is exactly one bump, so the
                # last n names are those of the last n versions
                if resp is None:
                    self.client.create(index=self.index, id=GENERATION_ID, document=doc)
                else:
                    self.client.index(
                        index=self.index,
                        id=GENERATION_ID,
                        document=doc,
                        if_seq_no=resp["_seq_no"],
                        if_primary_term=resp["_primary_term"],
                    )
                return
            except ConflictError:
                continue
        raise StorageUnavailable(f"registry generation: {BUMP_ATTEMPTS} conflicting writes")

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
        self.bump_generation(username)

    @translate_errors
    def revoke(self, username: str) -> Agent:
        """Delete ``username``'s record and bump the generation, so every cache forgets it;
        returns the record deleted.

        The bump happens whether or not there was a record: re-running a revocation whose
        bump failed (after the delete) still reaches every cache. ``UnknownAgent`` after
        the bump when there was nothing to delete."""
        agent = self.get(username)
        deleted = False
        if agent is not None and agent.doc_id is not None:
            try:
                self.client.delete(index=self.index, id=agent.doc_id)
                deleted = True
            except NotFoundError:
                pass
        self.bump_generation(username)
        if agent is None or not deleted:
            raise UnknownAgent(username)
        return agent
