"""Filters of the elasticsearch role: the decisions that used to be Jinja programs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "on", "1")
    return bool(value)


def cluster_nodes(
    hosts: Iterable[str],
    hostvars: Mapping[str, Mapping[str, Any]],
    this_host: str,
    this_node: Mapping[str, Any],
    role_defaults: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """Each member of the cluster's group as {host, name, address, transport_port, roles}.

    This host's values are its resolved settings (``this_node``). Another host's come from
    its inventory variables; role defaults are invisible through hostvars, so what it does
    not set falls back to the role's constant defaults (``role_defaults``).
    """
    nodes = []
    for host in hosts:
        if host == this_host:
            node = dict(this_node)
        else:
            hv = hostvars.get(host, {})
            node = {
                "name": hv.get("elasticsearch_node_name", host),
                "address": hv.get("elasticsearch_address", hv.get("ansible_host", host)),
                "transport_port": hv.get(
                    "elasticsearch_transport_port", role_defaults["elasticsearch_transport_port"]
                ),
                "roles": hv.get(
                    "elasticsearch_node_roles", role_defaults["elasticsearch_node_roles"]
                ),
            }
        node["host"] = host
        node["transport_port"] = int(node["transport_port"])
        node["roles"] = list(node["roles"])
        nodes.append(node)
    return nodes


def should_bootstrap(
    nodes: Sequence[Mapping[str, Any]],
    mode: Any,
    discovery_type: str,
    play_hosts: Iterable[str],
    hostvars: Mapping[str, Mapping[str, Any]],
) -> bool:
    """Whether this run renders cluster.initial_master_nodes (forms a brand-new cluster).

    ``mode`` is elasticsearch_bootstrap_cluster: true/false force it; auto bootstraps only
    when every master-eligible node is in the play (a --limit run never does) and every
    member in the play is still pending (its ``__elasticsearch_bootstrap_pending`` fact:
    no cluster state yet). Single-node discovery never bootstraps.
    """
    if discovery_type == "single-node":
        return False
    mode = str(mode).strip().lower()
    if mode in ("true", "false"):
        return mode == "true"
    in_play = set(play_hosts)
    masters = {n["host"] for n in nodes if "master" in n["roles"]}
    if not masters <= in_play:
        return False
    members = [n["host"] for n in nodes if n["host"] in in_play]
    return all(
        _as_bool(hostvars.get(h, {}).get("__elasticsearch_bootstrap_pending", False))
        for h in members
    )


def _entry_differs(want: Any, have: Any) -> bool:
    """A role entry (one of indices/applications) differs when a key we set has another
    value; keys Elasticsearch adds (e.g. allow_restricted_indices) do not count."""
    if not isinstance(want, Mapping) or not isinstance(have, Mapping):
        return want != have
    return any(k not in have or have[k] != v for k, v in want.items())


def role_differs(current: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> bool:
    """Whether PUT _security/role must run: the role is missing (``current`` None) or one
    of the keys we set has another value. Lists of objects (indices, applications) are
    compared entry by entry, in order, ignoring keys Elasticsearch adds to an entry."""
    if current is None:
        return True
    for key, want in wanted.items():
        have = current.get(key)
        is_list = isinstance(want, Sequence) and not isinstance(want, str)
        if is_list and any(isinstance(e, Mapping) for e in want):
            if have is None or len(have) != len(want):
                return True
            if any(_entry_differs(w, h) for w, h in zip(want, have, strict=True)):
                return True
        elif have != want:
            return True
    return False


def _version_key(version: str) -> tuple[tuple[int, ...], int, str]:
    """8.19.21 -> ((8, 19, 21), 1, ""); a pre-release (9.0.0-rc1) sorts before its release."""
    text = str(version).strip()
    release, _, pre = text.partition("-")
    try:
        numbers = tuple(int(p) for p in release.split("."))
    except ValueError:
        raise ValueError(f"not an Elasticsearch version: {version!r}") from None
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers = numbers[:-1]
    return numbers, 0 if pre else 1, pre


def version_compare(left: str, right: str) -> int:
    """-1, 0 or 1 as Elasticsearch version ``left`` is older than, the same as or newer than
    ``right`` (numeric per part: 8.9.0 < 8.19.0; 8.19 == 8.19.0)."""
    a, b = _version_key(left), _version_key(right)
    return (a > b) - (a < b)


# The x-pack build of a version is another tree than the open build of that version.
XPACK_SUFFIX = "-xpack"


def archive_dir(home: str, version: str, xpack: Any) -> str:
    """Where an archive of ``version`` is unpacked: <home>-<version>, plus -xpack for a
    distribution with x-pack. A host switching flavour at the same version gets the other
    tree unpacked and linked instead of keeping the one already there."""
    return f"{home.rstrip('/')}-{version}{XPACK_SUFFIX if _as_bool(xpack) else ''}"


def installed_version(
    method: str, home: str, link: Mapping[str, Any] | None, dpkg: str | None
) -> str:
    """The version installed on disk, "" if none. archive: the target of the unversioned
    install path, a link to an ``archive_dir`` (``link``: stat of <home>, not followed),
    whichever flavour. apt: dpkg-query's "${Status}|${Version}" (``dpkg``), counted when
    the package's state (the status's last word) is "installed", whatever its selection:
    the role holds it."""
    if method == "archive":
        link = link or {}
        prefix = home.rstrip("/").rsplit("/", 1)[-1] + "-"
        target = str(link.get("lnk_source") or "").rstrip("/").rsplit("/", 1)[-1]
        target = target.removesuffix(XPACK_SUFFIX)
        if link.get("islnk") and target.startswith(prefix) and len(target) > len(prefix):
            return target[len(prefix) :]
        return ""
    status, _, version = (dpkg or "").partition("|")
    words = status.split()
    return version.strip() if words and words[-1] == "installed" else ""


def restart_order(
    hosts: Iterable[str],
    hostvars: Mapping[str, Mapping[str, Any]],
    nodes: Sequence[Mapping[str, Any]] | None = None,
    elected_master: str = "",
) -> list[str]:
    """The rolling restart's order, Elastic's for a rolling upgrade: nodes found stopped
    (``__elasticsearch_initially_up`` false: an interrupted run) first, then nodes that
    are not master-eligible, then master-eligible ones, the elected master (its inventory
    host, ``elected_master``) last of all; inventory order within each class.

    A stopped node goes first because every other node's turn waits until the cluster has
    all its nodes, and on two master-eligible nodes it may hold the only vote. Masters go
    last because a newer node can join a cluster whose master is older, not the other way
    round, and the elected master last so that the cluster elects a new master once.
    ``nodes``: ``elasticsearch_cluster_nodes`` (``host`` and ``roles``); a host not in it
    counts as master-eligible.
    """
    hosts = list(hosts)
    roles = {n["host"]: list(n["roles"]) for n in nodes or []}

    def rank(host: str) -> int:
        if not _as_bool(hostvars.get(host, {}).get("__elasticsearch_initially_up", True)):
            return 0
        if host == elected_master:
            return 3
        return 2 if "master" in roles.get(host, ["master"]) else 1

    return sorted(hosts, key=rank)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "elasticsearch_cluster_nodes": cluster_nodes,
            "elasticsearch_should_bootstrap": should_bootstrap,
            "elasticsearch_role_differs": role_differs,
            "elasticsearch_version_compare": version_compare,
            "elasticsearch_installed_version": installed_version,
            "elasticsearch_archive_dir": archive_dir,
            "elasticsearch_restart_order": restart_order,
        }
