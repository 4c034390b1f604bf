"""The dashboards tell the truth: a known fleet (``fleet.py``) goes through the gateway into
a real Elasticsearch node, every panel of ``flock-dashboards.ndjson`` is run as its saved
object defines it (``panel_search.py``: one translator for all panels) and its table is
compared with what the fleet is known to have.

``TRUTH`` says, for each panel id, the rows the panel must show (the columns compared, and
the expected values of those columns); a panel of the file without an entry fails, and a
panel the translator cannot run outside Kibana is reported as skipped with the reason, never
passed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flock_gateway.app import create_app
from flock_gateway.config import Config
from flock_gateway.indices import IndexNames
from flock_gateway.storage.templates import setup_storage
from flock_testinfra.es_fixtures import drop_prefix, new_prefix

from dashboards.tests import fleet as F
from dashboards.tests.panel_search import Panel, Unsupported, panels, run

pytestmark = pytest.mark.integration

NDJSON = Path(__file__).resolve().parents[1] / "flock-dashboards.ndjson"
OBJECTS = [json.loads(line) for line in NDJSON.read_text(encoding="utf-8").splitlines() if line]
PANELS = panels(OBJECTS)


@dataclass(frozen=True)
class Rows:
    """The panel's rows on ``columns`` (column ids), as a multiset of tuples."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


@dataclass(frozen=True)
class Totals:
    """A date histogram split by ``key``: the sum of ``value`` per key over all buckets."""

    key: str
    value: str
    totals: dict[str, int]


def _hosts(fl: F.Fleet, *names: str) -> list[tuple[str, str]]:
    return [(fl.username(h), fl.agent_name(h)) for h in names]


def _macs(fl, *names):
    return [(fl.username(h), fl.agent_name(h), "darwin") for h in names]


def _data_received(fl: F.Fleet) -> Totals:
    # the dashboard's range, now-2d; no row of the fleet is within minutes of its start
    since = fl.now - 2 * F.DAY
    return Totals("query", "rows", dict(Counter(n for n, t in fl.sent.rows if t >= since)))


TRUTH: dict[str, Callable[[F.Fleet], Rows | Totals]] = {
    # ---- "Flock" (macOS, now) ----
    "flock-os-versions": lambda fl: Rows(
        ("os", "version", "hosts"), [("macOS", "14.5", 4), ("macOS", "13.6", 2)]
    ),
    "flock-os-versions-table": lambda fl: Rows(
        ("host", "agent", "os", "version", "seen"),
        [
            (*_hosts(fl, h)[0], "macOS", v, F.stamp(t))
            # a new Mac's daily twigs (os_version) come two hours after its hourly ones
            for h, v, t in (
                ("mac-1", "14.5", fl.now - 3 * F.DAY + 2 * F.HOUR),
                ("mac-2", "14.5", fl.now - 3 * F.DAY + 2 * F.HOUR),
                ("mac-3", "14.5", fl.now - 3 * F.DAY + 2 * F.HOUR),
                ("mac-4", "13.6", fl.now - 5 * F.DAY + 2 * F.HOUR),
                ("mac-5", "13.6", fl.now - 10 * F.DAY + 2 * F.HOUR),
                ("mac-6", "14.5", fl.now - 40 * F.HOUR),  # upgraded: 13.6 was removed
            )
        ],
    ),
    "flock-data-received": _data_received,
    "flock-installed-applications": lambda fl: Rows(
        ("c0", "c1", "c2", "hosts"), [("Signal", "7.1.0", "org.whispersystems.signal-desktop", 1)]
    ),
    "flock-browser-plugins": lambda fl: Rows(
        ("c0", "c1", "c2", "hosts"), [("Java Applet", "8.0", "com.oracle.java.JavaAppletPlugin", 1)]
    ),
    # uBlock on every Mac (linux-1's copy is not a Mac's), the obscure one on mac-3 only,
    # the coupon extension removed from mac-2
    "flock-chrome-extensions": lambda fl: Rows(
        ("c0", "c1", "c2", "hosts"),
        [("chrome", *F.UBLOCK, 6), ("chrome", *F.OBSCURE, 1)],
    ),
    "flock-firefox-addons": lambda fl: Rows(
        ("c0", "c1", "c2", "hosts"),
        [("Privacy Badger", "jid1-MnnxcxisBPnSXQ@jetpack", "extension", 1)],
    ),
    "flock-safari-extensions": lambda fl: Rows(
        ("c0", "c1", "hosts"), [("1Password", "com.1password.safari", 1)]
    ),
    "flock-opera-extensions": lambda fl: Rows(
        ("c0", "c1", "hosts"), [("Opera Ad Blocker", "opera-adblock", 1)]
    ),
    # FileVault off on mac-2 and mac-5; mac-3 turned it on
    "flock-disk-encryption": lambda fl: Rows(
        ("value", "hosts"), [("encrypted", 4), ("not encrypted", 2)]
    ),
    "flock-firewall": lambda fl: Rows(("value", "hosts"), [("0", 2), ("1", 4)]),
    "flock-gatekeeper": lambda fl: Rows(("value", "hosts"), [("1", 5), ("0", 1)]),
    "flock-sip": lambda fl: Rows(("value", "hosts"), [("1", 5), ("0", 1)]),
    "flock-guest-account": lambda fl: Rows(("value", "hosts"), [("0", 5), ("1", 1)]),
    "flock-remote-sharing": lambda fl: Rows(
        (
            "screen_sharing",
            "file_sharing",
            "remote_login",
            "remote_management",
            "remote_apple_events",
            "internet_sharing",
            "printer_sharing",
            "bluetooth_sharing",
        ),
        [(1, 1, 1, 0, 0, 0, 0, 0)],
    ),
    # com.evil.b was removed from mac-2
    "flock-launch-daemons": lambda fl: Rows(
        ("c0", "c1", "c2", "hosts"),
        [("com.apple.a", "/usr/libexec/a", "/Library/LaunchDaemons/com.apple.a.plist", 2)],
    ),
    "flock-startup-items": lambda fl: Rows(
        ("c0", "c1", "c2", "hosts"), [("Dropbox", "/Applications/Dropbox.app", "Login Item", 1)]
    ),
    # ---- "Flock - Linux" (now; Macs send cron jobs, setuid binaries, /etc/hosts too) ----
    "flock-linux-os-versions": lambda fl: Rows(
        ("os", "version", "hosts"),
        [("Ubuntu", "22.04", 2), ("Debian GNU/Linux", "12", 1), ("Ubuntu", "20.04", 1)],
    ),
    "flock-linux-disk-encryption": lambda fl: Rows(
        ("value", "hosts"), [("encrypted", 2), ("not encrypted", 2)]
    ),
    # linux-3's second snapshot no longer has the curl | sh job
    "flock-linux-crontab": lambda fl: Rows(
        ("command", "path", "hosts"), [(F.LOGROTATE, "/etc/crontab", 4)]
    ),
    "flock-linux-suid-binaries": lambda fl: Rows(
        ("path", "user", "perm", "hosts"),
        [("/usr/bin/sudo", "root", "S", 4), (F.ODD_SUID, "root", "S", 1)],
    ),
    "flock-linux-etc-hosts": lambda fl: Rows(
        ("address", "names", "hosts"),
        [("127.0.0.1", "localhost", 4), ("10.6.6.6", "updates.example.com", 1)],
    ),
    # ---- "Flock - Fleet overview" ----
    # sent in the last day: mac-1, mac-2, mac-3 (changes), linux-1..3 (snapshots 2 h ago)
    "flock-fleet-hosts-last-day": lambda fl: Rows(("hosts",), [(6,)]),
    "flock-fleet-no-disk-encryption": lambda fl: Rows(("hosts",), [(4,)]),
    "flock-fleet-no-firewall": lambda fl: Rows(("hosts",), [(2,)]),
    "flock-fleet-seen-counts": lambda fl: Rows(("known", "recent"), [(10, 9)]),
    "flock-fleet-silent-hosts": lambda fl: Rows(
        ("host", "agent", "platform", "os", "seen_days_ago"),
        [(*_macs(fl, "mac-5")[0], "13.6", 10)],
    ),
    "flock-fleet-no-disk-encryption-hosts": lambda fl: Rows(
        ("host", "agent", "platform", "type"),
        [
            (*_macs(fl, "mac-2")[0], "/dev/disk3s1"),
            (*_macs(fl, "mac-5")[0], "/dev/disk3s1"),
            (*_hosts(fl, "linux-2")[0], "linux", "/dev/sda2"),
            (*_hosts(fl, "linux-4")[0], "linux", "/dev/sda2"),
        ],
    ),
    "flock-fleet-no-firewall-hosts": lambda fl: Rows(
        ("host", "agent"), _hosts(fl, "mac-1", "mac-4")
    ),
    # history: mac-3 had it off for an hour today; mac-1's "off" line is 3 days old
    "flock-fleet-firewall-turned-off": lambda fl: Rows(("host", "agent"), _hosts(fl, "mac-3")),
}


def _derived(row: dict[str, Any], now: int) -> dict[str, Any]:
    """Columns compared in a coarser form than shown: how many days ago a date was."""
    out = dict(row)
    if isinstance(row.get("seen"), str):
        seen = datetime.fromisoformat(row["seen"].replace("Z", "+00:00")).timestamp()
        out["seen_days_ago"] = round((now - seen) / F.DAY)
    return out


def _compare(truth: Rows | Totals, table: list[dict[str, Any]], now: int) -> tuple[Any, Any]:
    if isinstance(truth, Totals):
        got: Counter[str] = Counter()
        for row in table:
            got[row[truth.key]] += row[truth.value]
        return dict(+got), truth.totals
    got_rows = sorted(
        (tuple(_derived(row, now).get(c) for c in truth.columns) for row in table), key=repr
    )
    return got_rows, sorted(truth.rows, key=repr)


@pytest.fixture(scope="module")
def fleet(es, es_url) -> Iterator[tuple[F.Fleet, str]]:
    prefix = new_prefix()
    setup_storage(es, IndexNames(prefix))
    config = Config(
        es_hosts=(es_url,),
        index_prefix=prefix,
        enroll_secrets=(F.ENROLL_SECRET,),
        register_requires_secret=False,  # Flock agent cannot send a secret
        auth_cache_ttl=0,
    )
    client = create_app(config).test_client()
    now = int(datetime.now().timestamp())
    built = F.send_fleet(client, client, now)
    es.indices.refresh(index=f"{prefix}-*", expand_wildcards="all")
    yield built, prefix
    drop_prefix(es, prefix)


def test_every_panel_has_a_truth():
    ids = {p.vis["id"] for p in PANELS}
    assert ids, "no panels found"
    assert sorted(ids - set(TRUTH)) == [], "panels without a known answer"
    assert sorted(set(TRUTH) - ids) == [], "answers for panels that do not exist"


@pytest.mark.parametrize("panel", PANELS, ids=[f"{p.vis['id']}" for p in PANELS])
def test_panel_shows_the_truth(panel: Panel, fleet, es):
    built, prefix = fleet
    try:
        table = run(es, panel, OBJECTS, prefix)
    except Unsupported as exc:
        pytest.skip(f"cannot run outside Kibana: {exc}")
    got, expected = _compare(TRUTH[panel.vis["id"]](built), table, built.now)
    assert got == expected, f"{panel.dashboard} / {panel.vis['attributes']['title']}: {table}"
