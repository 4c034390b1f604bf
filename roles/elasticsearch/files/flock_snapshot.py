#!/usr/bin/env python3
"""flock-snapshot: snapshots of Flock's indices, their expiry, and restores.

    flock-snapshot run                 take a snapshot, then delete expired ones (the timer)
    flock-snapshot expire [--now ISO]  delete snapshots older than the keep period only
    flock-snapshot list                the repository's Flock snapshots, oldest first
    flock-snapshot restore [--snapshot NAME] [--with-agents]
                                       bring back the indices of NAME (default: the latest
                                       successful snapshot) that the cluster no longer has

Settings come from the environment (the unit's root-only EnvironmentFile):
FLOCK_SNAPSHOT_URL, FLOCK_SNAPSHOT_CA (optional), FLOCK_SNAPSHOT_USERNAME and
FLOCK_SNAPSHOT_PASSWORD (optional), FLOCK_SNAPSHOT_REPOSITORY, FLOCK_SNAPSHOT_PREFIX (the
index prefix; snapshots are named ``<prefix>-YYYY.MM.DD-hhmmss``), FLOCK_SNAPSHOT_KEEP_DAYS.

Every command prints one JSON object and exits 0, or prints ``{"ok": false, "message": ...}``
and exits 1. Only the Python standard library is used: the Elasticsearch hosts need no
package index and no virtualenv.

A restore never overwrites an index the cluster has: it brings back what is missing. The
agent registry (``<prefix>-agents``) is left out unless ``--with-agents`` is given, and
even then only restored when the cluster has none: a registry restored over a live one would
bring back agents revoked after the snapshot.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

# The kinds of index the gateway writes, each <prefix>-<kind>-<date>, its registry and
# its current-state index (<prefix>-state).
DAILY_KINDS = ("results", "agent-logs", "status")
NAME_FORMAT = "%Y.%m.%d-%H%M%S"


class Failed(Exception):
    """What went wrong, in words for the operator."""


class Cluster:
    """The few REST calls this tool makes, with the configured credentials and CA."""

    def __init__(self, url: str, username: str = "", password: str = "", ca: str = "") -> None:
        self.url = url.rstrip("/")
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if username:
            token = base64.b64encode(f"{username}:{password}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        self.context = ssl.create_default_context(cafile=ca or None)

    def call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200,)) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - the operator's https/http URL
            self.url + path, data=data, method=method, headers=self.headers
        )
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=3600) as resp:  # noqa: S310
                status, text = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            raise Failed(f"cannot reach Elasticsearch at {self.url}: {exc}") from None
        answer = json.loads(text) if text.strip() else {}
        if status not in ok:
            raise Failed(f"{method} {path}: HTTP {status}: {_reason(answer)}")
        return answer


def _reason(answer: Any) -> str:
    error = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(error, dict):
        return f"{error.get('type')}: {error.get('reason')}"
    return json.dumps(answer)[:500]


def flock_indices(prefix: str) -> list[str]:
    return [f"{prefix}-{kind}-*" for kind in DAILY_KINDS] + [f"{prefix}-agents", f"{prefix}-state"]


def snapshots(cluster: Cluster, repository: str, prefix: str) -> list[dict[str, Any]]:
    """The repository's snapshots of this prefix, oldest first."""
    path = f"/_snapshot/{urllib.parse.quote(repository)}/{urllib.parse.quote(prefix)}-*"
    answer = cluster.call("GET", path + "?ignore_unavailable=true", ok=(200, 404))
    found = answer.get("snapshots", [])
    return sorted(found, key=lambda s: (s.get("start_time_in_millis", 0), s["snapshot"]))


def take(cluster: Cluster, repository: str, prefix: str, now: datetime) -> dict[str, Any]:
    name = f"{prefix}-{now.strftime(NAME_FORMAT)}"
    body = {
        "indices": ",".join(flock_indices(prefix)),
        "ignore_unavailable": True,
        "include_global_state": False,
        "metadata": {"taken_by": "flock-snapshot"},
    }
    path = f"/_snapshot/{urllib.parse.quote(repository)}/{name}?wait_for_completion=true"
    answer = cluster.call("PUT", path, body)
    snap = answer.get("snapshot", {})
    if snap.get("state") != "SUCCESS":
        raise Failed(f"snapshot {name} ended {snap.get('state')}: {snap.get('failures')}")
    return {"snapshot": name, "indices": sorted(snap.get("indices", []))}


def expire(
    cluster: Cluster, repository: str, prefix: str, keep_days: int, now: datetime, keep: str = ""
) -> list[str]:
    """Delete the snapshots started more than ``keep_days`` before ``now`` (never ``keep``)."""
    cutoff_ms = (now - timedelta(days=keep_days)).timestamp() * 1000
    doomed = [
        s["snapshot"]
        for s in snapshots(cluster, repository, prefix)
        if s.get("start_time_in_millis", 0) < cutoff_ms and s["snapshot"] != keep
    ]
    for start in range(0, len(doomed), 20):
        names = ",".join(doomed[start : start + 20])
        cluster.call("DELETE", f"/_snapshot/{urllib.parse.quote(repository)}/{names}")
    return doomed


def latest(cluster: Cluster, repository: str, prefix: str) -> str:
    done = [s for s in snapshots(cluster, repository, prefix) if s.get("state") == "SUCCESS"]
    if not done:
        raise Failed(f"repository {repository!r} has no successful snapshot of {prefix}-*")
    return done[-1]["snapshot"]


def restore(
    cluster: Cluster, repository: str, prefix: str, snapshot: str, with_agents: bool
) -> dict[str, Any]:
    """Restore the snapshot's indices the cluster lacks; report what was and was not."""
    path = f"/_snapshot/{urllib.parse.quote(repository)}/{urllib.parse.quote(snapshot)}"
    found = cluster.call("GET", path, ok=(200, 404)).get("snapshots", [])
    if not found:
        raise Failed(f"no snapshot {snapshot!r} in repository {repository!r}")
    in_snapshot = sorted(found[0].get("indices", []))
    patterns = ",".join(flock_indices(prefix))
    existing = cluster.call(
        "GET",
        f"/{patterns}/_settings/index.uuid?expand_wildcards=all&allow_no_indices=true&ignore_unavailable=true",
    )
    registry = f"{prefix}-agents"
    wanted, kept, skipped = [], [], []
    for index in in_snapshot:
        if index in existing:
            kept.append(index)
        elif index == registry and not with_agents:
            skipped.append(index)
        elif index in (registry, f"{prefix}-state") or any(
            index.startswith(f"{prefix}-{k}-") for k in DAILY_KINDS
        ):
            wanted.append(index)
    if wanted:
        body = {
            "indices": ",".join(wanted),
            "include_global_state": False,
            "include_aliases": False,
        }
        answer = cluster.call("POST", f"{path}/_restore?wait_for_completion=true", body)
        shards = answer.get("snapshot", {}).get("shards", {})
        if shards.get("failed", 0):
            raise Failed(f"restore of {snapshot} failed for {shards['failed']} shards")
    return {
        "snapshot": snapshot,
        "restored": wanted,
        "already_present": kept,
        "not_restored": skipped,
        "changed": bool(wanted),
    }


def _settings() -> dict[str, str]:
    env = os.environ
    missing = [
        k
        for k in ("FLOCK_SNAPSHOT_URL", "FLOCK_SNAPSHOT_REPOSITORY", "FLOCK_SNAPSHOT_PREFIX")
        if not env.get(k)
    ]
    if missing:
        raise Failed(f"not set: {', '.join(missing)}")
    return {
        k: env.get(k, "")
        for k in (
            "FLOCK_SNAPSHOT_URL",
            "FLOCK_SNAPSHOT_CA",
            "FLOCK_SNAPSHOT_USERNAME",
            "FLOCK_SNAPSHOT_PASSWORD",
            "FLOCK_SNAPSHOT_REPOSITORY",
            "FLOCK_SNAPSHOT_PREFIX",
            "FLOCK_SNAPSHOT_KEEP_DAYS",
        )
    }


def _keep_days(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        raise Failed(
            f"FLOCK_SNAPSHOT_KEEP_DAYS must be a whole number of days, not {value!r}"
        ) from None
    if days < 1:
        raise Failed("FLOCK_SNAPSHOT_KEEP_DAYS must be at least 1")
    return days


def _now(value: str | None) -> datetime:
    if not value:
        return datetime.now(tz=UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Failed(f"--now must be an ISO date and time, not {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flock-snapshot", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="take a snapshot, then delete expired ones")
    p = sub.add_parser("expire", help="delete snapshots older than FLOCK_SNAPSHOT_KEEP_DAYS")
    p.add_argument("--now", help="count ages from this ISO time instead of now")
    sub.add_parser("list", help="list the Flock snapshots, oldest first")
    p = sub.add_parser("restore", help="restore the indices the cluster lacks")
    p.add_argument("--snapshot", help="snapshot name (default: the latest successful one)")
    p.add_argument(
        "--with-agents",
        action="store_true",
        help="also restore the agent registry, when the cluster has none",
    )
    args = parser.parse_args(argv)
    try:
        cfg = _settings()
        cluster = Cluster(
            cfg["FLOCK_SNAPSHOT_URL"],
            cfg["FLOCK_SNAPSHOT_USERNAME"],
            cfg["FLOCK_SNAPSHOT_PASSWORD"],
            cfg["FLOCK_SNAPSHOT_CA"],
        )
        repo, prefix = cfg["FLOCK_SNAPSHOT_REPOSITORY"], cfg["FLOCK_SNAPSHOT_PREFIX"]
        if args.command == "run":
            keep_days = _keep_days(cfg["FLOCK_SNAPSHOT_KEEP_DAYS"] or "90")
            now = datetime.now(tz=UTC)
            taken = take(cluster, repo, prefix, now)
            deleted = expire(cluster, repo, prefix, keep_days, now, keep=taken["snapshot"])
            report = {**taken, "keep_days": keep_days, "deleted": deleted, "changed": True}
        elif args.command == "expire":
            keep_days = _keep_days(cfg["FLOCK_SNAPSHOT_KEEP_DAYS"] or "90")
            deleted = expire(cluster, repo, prefix, keep_days, _now(args.now))
            report = {"keep_days": keep_days, "deleted": deleted, "changed": bool(deleted)}
        elif args.command == "list":
            report = {
                "snapshots": [
                    {
                        "snapshot": s["snapshot"],
                        "state": s.get("state"),
                        "start_time": s.get("start_time"),
                    }
                    for s in snapshots(cluster, repo, prefix)
                ]
            }
        else:
            name = args.snapshot or latest(cluster, repo, prefix)
            report = restore(cluster, repo, prefix, name, args.with_agents)
    except Failed as exc:
        print(json.dumps({"ok": False, "message": str(exc)}))
        print(f"flock-snapshot: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"ok": True, **report}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
