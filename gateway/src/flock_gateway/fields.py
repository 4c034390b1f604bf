"""The names the gateway owns in what it stores, and the agent sources it knows.

Standard library only and free of imports from the package: the dashboards generator and
the tests read these names from here too, so that a name changes in one place.
"""

from __future__ import annotations

# Where an agent's rows come from (the registry's ``source`` and ``flock.source``).
FLOCK_AGENT = "flock-agent"
OSQUERY = "osquery"

# The time of each stored row (the row's own time, else when it was received).
TIMESTAMP = "@timestamp"
# The object the gateway adds to every stored row; its members are below.
GATEWAY = "flock"
USERNAME = "username"  # the agent's registry id
NAME = "name"  # the agent's display name
SOURCE = "source"  # FLOCK_AGENT or OSQUERY
RECEIVED_AT = "received_at"
QUARANTINE_REASON = "quarantine_reason"  # why the mapping refused the row
RAW_JSON = "raw_json"  # a refused row, kept whole as one unindexed JSON string
# The host's platform family (PLATFORMS) and OS version, from its own os_version rows;
# on results rows and state documents once known.
PLATFORM = "platform"
OS_VERSION = "os_version"
# The current-state index's own members: which kind of document (STATE_ROW or
# STATE_HOST), whether a row is there now, and when a host last sent results.
KIND = "kind"
PRESENT = "present"
LAST_SEEN = "last_seen"
STATE_ROW = "row"
STATE_HOST = "host"
STATE_REVOCATION = "revocation"  # a revoked host: see storage/state_prune.py
REVOKED_AT = "revoked_at"

# osquery's platform words; the platform column of os_version maps to one of them.
DARWIN = "darwin"
LINUX = "linux"
WINDOWS = "windows"
PLATFORMS = (DARWIN, LINUX, WINDOWS)
# The query whose rows tell a host's platform and OS version (osqueryd's schedule and
# Flock agent's twigs both name it so), and the columns read.
OS_VERSION_QUERY = "os_version"
OS_PLATFORM_COLUMNS = ("platform", "platform_like")
OS_VERSION_COLUMN = "version"

# Everything an agent sent, unchanged, is stored under this one top-level object; every
# other top-level name is the gateway's, so no spelling of a client key can reach them.
CLIENT = "data"
QUERY_NAME = "name"  # osquery's query name, in the client's line
COLUMNS = "columns"  # osquery's result columns, in the client's line

# Top-level names only the gateway writes.
OWNED = (TIMESTAMP, GATEWAY)


def gateway_field(member: str) -> str:
    """The dotted field name of a member of the gateway's object, e.g. ``flock.name``."""
    return f"{GATEWAY}.{member}"


def client_field(path: str) -> str:
    """The stored field name of a field of the client's line, e.g. ``data.columns.name``."""
    return f"{CLIENT}.{path}"
