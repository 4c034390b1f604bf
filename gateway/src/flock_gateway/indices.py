"""Index and template names, all derived from one prefix (default "flock"), and how many
indices the retention keeps alive."""

from __future__ import annotations

from dataclasses import dataclass

RESULTS = "results"
AGENT_LOGS = "agent-logs"
STATUS = "status"
DAILY_KINDS = (RESULTS, AGENT_LOGS, STATUS)
# The current-state index: not dated, never deleted by age (see storage/state_prune.py).
STATE = "state"

# How much time one index covers. Each index is one shard (two copies with a replica), and
# a cluster holds at most cluster.max_shards_per_node per data node: long retention needs
# coarser indices.
GRANULARITIES = {"day": 1, "week": 7, "month": 28}  # days; a month has at least 28


def indices_per_kind(retention_days: int, granularity: str) -> int:
    """Indices of one kind alive at once: the retained span, the current period, and
    rows up to two days ahead (a laptop's clock)."""
    return -(-retention_days // GRANULARITIES[granularity]) + 2


def shards_needed(retention_days: int, granularity: str, data_nodes: int) -> int:
    """Shard copies the gateway's indices take at most (a replica once there are 2 nodes)."""
    copies = 1 if data_nodes < 2 else 2
    # beside the dated indices: the registry and the current-state index
    return (len(DAILY_KINDS) * indices_per_kind(retention_days, granularity) + 2) * copies


def shard_budget(max_shards_per_node: int, data_nodes: int) -> int:
    """What the gateway may use: half the cluster's limit, leaving room for Kibana's and
    Elasticsearch's own indices and for moving shards during upgrades."""
    return max_shards_per_node * data_nodes // 2


@dataclass(frozen=True)
class IndexNames:
    prefix: str = "flock"

    @property
    def agents(self) -> str:
        return f"{self.prefix}-agents"

    @property
    def state(self) -> str:
        return f"{self.prefix}-{STATE}"

    def daily_pattern(self, kind: str) -> str:
        return f"{self.prefix}-{kind}-*"

    def prefixed(self, name: str) -> str:
        """A name written with the default prefix ("flock-...") under this prefix."""
        if name.startswith("flock-"):
            return f"{self.prefix}-{name[len('flock-') :]}"
        return name
