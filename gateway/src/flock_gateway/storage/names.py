"""Index and template names, all derived from one prefix (default "flock")."""

from __future__ import annotations

from dataclasses import dataclass

RESULTS = "results"
AGENT_LOGS = "agent-logs"
STATUS = "status"
DAILY_KINDS = (RESULTS, AGENT_LOGS, STATUS)


@dataclass(frozen=True)
class IndexNames:
    prefix: str = "flock"

    @property
    def agents(self) -> str:
        return f"{self.prefix}-agents"

    def daily_pattern(self, kind: str) -> str:
        return f"{self.prefix}-{kind}-*"

    def prefixed(self, name: str) -> str:
        """A name written with the default prefix ("flock-...") under this prefix."""
        if name.startswith("flock-"):
            return f"{self.prefix}-{name[len('flock-') :]}"
        return name
