"""The panels of the three Flock dashboards, in the order they are laid out.

Each panel is ``(visualization, grid width, grid height[, panel time range])``. Panels of
one kind (an inventory table, a donut of a setting) are rows of data, one per panel.

"Now" panels (what hosts have and how they are set up) read the current state: rows
present now, whatever the time picker says, so a host that changed nothing for weeks is
still counted and a removed row is not. History panels (what arrived, what changed in the
time range) read the results. Platform panels filter on the platform the gateway derived
from the host's own os_version rows (``flock.platform``), never on a column a query may
or may not return.
"""

from __future__ import annotations

from flock_gateway.fields import DARWIN, client_field
from flock_gateway.fields import LINUX as LINUX_PLATFORM
from kibana_lens import (
    AGENT_NAME,
    HISTORY,
    HOST,
    HOSTS_NOW,
    LAST_SEEN_FIELD,
    NOW,
    OS_VERSION_FIELD,
    PLATFORM_FIELD,
    QUERY,
    bars_over_time,
    count,
    donut,
    hosts,
    last_seen,
    metric,
    phrase,
    platform_is,
    query_is,
    result_column,
    table,
    terms,
)

MACOS = platform_is(DARWIN)
LINUX = platform_is(LINUX_PLATFORM)
CHANGED = "Last changed"  # a state row's @timestamp: the line that last changed it


def inventory_table(vis_id, title, query, description, fields, platform=MACOS):
    """Which items (e.g. extensions) are present now, on how many hosts: the most common
    first."""
    rows = [
        (f"c{i}", terms(result_column(col), label, size=size, order_by="hosts"))
        for i, (col, label, size) in enumerate(fields)
    ]
    return table(
        vis_id,
        title,
        description,
        rows,
        [("hosts", hosts()), ("seen", last_seen(CHANGED))],
        [query_is(query), platform],
        sort=("hosts", "desc"),
        source=NOW,
    )


def setting_donut(vis_id, title, query, description, column, label, extra=(), platform=MACOS):
    """Hosts per value, now, of a single-row security setting (e.g. firewall state)."""
    return donut(
        vis_id,
        title,
        description,
        [("value", terms(result_column(column), label, size=5, order_by="hosts"))],
        ("hosts", hosts()),
        [query_is(query), platform, *extra],
        source=NOW,
    )


def host_list(vis_id, title, description, filters, extra_rows=(), source=NOW):
    """Hosts matching ``filters`` with their agent name and when the row last changed."""
    rows = [
        ("host", terms(HOST, "Host", size=500)),
        ("agent", terms(AGENT_NAME, "Agent name", size=1, missing=True)),
        *extra_rows,
    ]
    seen = last_seen(CHANGED if source == NOW else "Last reported")
    return table(
        vis_id,
        title,
        description,
        rows,
        [("seen", seen)],
        filters,
        sort=("seen", "desc"),
        source=source,
    )


def overview_panels():
    """macOS versions now and the data received, at the top of the "Flock" dashboard."""
    os_groups = [
        ("os", terms(result_column("name"), "Operating system", size=5, order_by="hosts")),
        ("version", terms(result_column("version"), "Version", size=10, order_by="hosts")),
    ]
    return [
        (
            donut(
                "flock-os-versions",
                "[Flock] Operating systems",
                "macOS hosts per operating system and version now (query os_version).",
                os_groups,
                ("hosts", hosts()),
                [query_is("os_version"), MACOS],
                source=NOW,
            ),
            24,
            15,
        ),
        (
            host_list(
                "flock-os-versions-table",
                "[Flock] Operating systems table",
                "Each macOS host with its operating system and version now (query os_version).",
                [query_is("os_version"), MACOS],
                extra_rows=[
                    ("os", terms(result_column("name"), "Operating system", size=1)),
                    ("version", terms(result_column("version"), "Version", size=1)),
                ],
            ),
            24,
            15,
        ),
        (
            bars_over_time(
                "flock-data-received",
                "[Flock] Data received",
                "Result rows stored over time (every host), split by osquery query name.",
                ("query", terms(QUERY, "Query", size=20, order_by="rows")),
                ("rows", count("Rows")),
                [],
                source=HISTORY,
            ),
            48,
            12,
        ),
    ]


# Software inventories: (id, title, query, description, [(column, label, size)], width).
SOFTWARE = (
    (
        "flock-installed-applications",
        "[Flock] Installed applications",
        "installed_applications",
        "macOS applications by name and version, with the number of hosts that have them.",
        [
            ("bundle_name", "Application", 200),
            ("bundle_short_version", "Version", 10),
            ("bundle_identifier", "Bundle identifier", 1),
        ],
        48,
    ),
    (
        "flock-browser-plugins",
        "[Flock] Browser plugins",
        "browser_plugins",
        "NPAPI browser plugins and the number of hosts that have them.",
        [("name", "Plugin", 100), ("version", "Version", 10), ("identifier", "Identifier", 1)],
        24,
    ),
    (
        "flock-chrome-extensions",
        "[Flock] Chrome extensions",
        "chrome_extensions",
        "Extensions of Chrome and other Chromium-based browsers (browser_type), by hosts.",
        [
            ("browser_type", "Browser", 10),
            ("name", "Extension", 200),
            ("identifier", "Identifier", 1),
        ],
        24,
    ),
    (
        "flock-firefox-addons",
        "[Flock] Firefox extensions",
        "firefox_addons",
        "Firefox add-ons by name and identifier, with the number of hosts.",
        [("name", "Add-on", 200), ("identifier", "Identifier", 1), ("type", "Type", 5)],
        24,
    ),
    (
        "flock-safari-extensions",
        "[Flock] Safari extensions",
        "safari_extensions",
        "Safari extensions by name and identifier, with the number of hosts.",
        [("name", "Extension", 200), ("identifier", "Identifier", 1)],
        24,
    ),
    (
        "flock-opera-extensions",
        "[Flock] Opera extensions",
        "opera_extensions",
        "Opera extensions by name and identifier, with the number of hosts.",
        [("name", "Extension", 200), ("identifier", "Identifier", 1)],
        24,
    ),
)

# Security settings, one donut each: (id, title, query, description, column, label, extra).
SETTINGS = (
    (
        "flock-disk-encryption",
        "[Flock] Disk encryption",
        "disk_encryption",
        "macOS hosts whose system disk is encrypted (FileVault) now, or not.",
        "encryption_status",
        "Encryption status",
        (),
    ),
    (
        "flock-firewall",
        "[Flock] Firewall",
        "alf",
        "macOS application firewall: 0 off, 1 on, 2 blocking all incoming connections.",
        "global_state",
        "Firewall state",
        (),
    ),
    (
        "flock-gatekeeper",
        "[Flock] Gatekeeper",
        "gatekeeper",
        "Gatekeeper assessments: 1 on, 0 off.",
        "assessments_enabled",
        "Gatekeeper enabled",
        (),
    ),
    (
        "flock-sip",
        "[Flock] System Integrity Protection",
        "sip",
        "System Integrity Protection: 1 on, 0 off.",
        "enabled",
        "SIP enabled",
        (),
    ),
    (
        "flock-guest-account",
        "[Flock] Guest account",
        "loginwindow1",
        "GuestEnabled in the login window preferences: 1 means the guest account is on.",
        "value",
        "Guest account enabled",
        (phrase(result_column("key"), "GuestEnabled"),),
    ),
)

# macOS sharing services (column of sharing_preferences, label).
SHARING_SERVICES = (
    ("screen_sharing", "Screen sharing"),
    ("file_sharing", "File sharing"),
    ("remote_login", "Remote login (SSH)"),
    ("remote_management", "Remote management"),
    ("remote_apple_events", "Remote Apple events"),
    ("internet_sharing", "Internet sharing"),
    ("printer_sharing", "Printer sharing"),
    ("bluetooth_sharing", "Bluetooth sharing"),
)

# What starts by itself: (id, title, query, description, [(column, label, size)]).
PERSISTENCE = (
    (
        "flock-launch-daemons",
        "[Flock] Launch daemons",
        "launchd",
        "LaunchDaemons and LaunchAgents by label and program, with the number of hosts.",
        [("label", "Label", 200), ("program", "Program", 1), ("path", "plist", 1)],
    ),
    (
        "flock-startup-items",
        "[Flock] Startup items",
        "startup_items",
        "Login and startup items by name and path, with the number of hosts.",
        [("name", "Name", 200), ("path", "Path", 1), ("type", "Type", 5)],
    ),
)


def software_panels():
    return [(inventory_table(*row[:5]), row[5], 15) for row in SOFTWARE]


def settings_panels():
    donuts = [(setting_donut(*row[:6], extra=row[6]), 12, 12) for row in SETTINGS]
    sharing = table(
        "flock-remote-sharing",
        "[Flock] Remote sharing",
        "Hosts with each macOS sharing service turned on now (query sharing_preferences).",
        [],
        [(svc, hosts(label, kql=f'{result_column(svc)} : "1"')) for svc, label in SHARING_SERVICES],
        [query_is("sharing_preferences"), MACOS],
        source=NOW,
    )
    return [*donuts, (sharing, 36, 8)]


def persistence_panels():
    return [(inventory_table(*row), 48, 15) for row in PERSISTENCE]


def flock_panels():
    """The "Flock" dashboard: the original project's panels (macOS)."""
    return [*overview_panels(), *software_panels(), *settings_panels(), *persistence_panels()]


# Items found on Linux hosts, the rare ones (fewest hosts) first:
# (id, title, query, description, [(column id, column, label, size)]).
LINUX_ITEMS = (
    (
        "flock-linux-crontab",
        "[Flock Linux] Cron jobs",
        "crontab",
        "Cron jobs (command and crontab file) on Linux hosts now, with the number of hosts.",
        [("command", "command", "Command", 200), ("path", "path", "Crontab", 3)],
    ),
    (
        "flock-linux-suid-binaries",
        "[Flock Linux] Setuid binaries",
        "suid_bin",
        "Setuid/setgid binaries on Linux hosts now; the rare ones (fewest hosts) first.",
        [
            ("path", "path", "Binary", 500),
            ("user", "username", "Owner", 3),
            ("perm", "permissions", "Permissions", 3),
        ],
    ),
    (
        "flock-linux-etc-hosts",
        "[Flock Linux] /etc/hosts entries",
        "etc_hosts",
        "Entries of /etc/hosts on Linux hosts now; the rare ones (fewest hosts) first.",
        [("address", "address", "Address", 200), ("names", "hostnames", "Host names", 5)],
    ),
)


def linux_items_table(vis_id, title, query, description, columns):
    rows = [
        (cid, terms(result_column(col), label, size=size, order_by="hosts"))
        for cid, col, label, size in columns
    ]
    return table(
        vis_id,
        title,
        description,
        rows,
        [("hosts", hosts()), ("seen", last_seen(CHANGED))],
        [query_is(query), LINUX],
        sort=("hosts", "asc"),
        source=NOW,
    )


def linux_panels():
    return [
        (
            donut(
                "flock-linux-os-versions",
                "[Flock Linux] Distributions",
                "Linux hosts per distribution and version now (query os_version).",
                [
                    ("os", terms(result_column("name"), "Distribution", size=10, order_by="hosts")),
                    (
                        "version",
                        terms(result_column("version"), "Version", size=10, order_by="hosts"),
                    ),
                ],
                ("hosts", hosts()),
                [query_is("os_version"), LINUX],
                source=NOW,
            ),
            24,
            15,
        ),
        (
            setting_donut(
                "flock-linux-disk-encryption",
                "[Flock Linux] Disk encryption",
                "disk_encryption",
                "Linux hosts whose root file system is on an encrypted (LUKS) device now, or not.",
                "encryption_status",
                "Encryption status",
                platform=LINUX,
            ),
            24,
            15,
        ),
        *((linux_items_table(*row), 48, 15) for row in LINUX_ITEMS),
    ]


# Panel-level time ranges override the dashboard's for history panels of the fleet overview.
LAST_DAY = {"from": "now-24h", "to": "now"}
# A host is silent when it has not sent results for this many days.
SILENT_DAYS = 7
SEEN_RECENTLY = f'{LAST_SEEN_FIELD} >= "now-{SILENT_DAYS}d"'
SILENT = f'{LAST_SEEN_FIELD} < "now-{SILENT_DAYS}d"'


def fleet_panels():
    no_disk_encryption = [query_is("disk_encryption"), phrase(result_column("encrypted"), "0")]
    no_firewall = [query_is("alf"), phrase(result_column("global_state"), "0")]
    return [
        (
            metric(
                "flock-fleet-hosts-last-day",
                "[Flock fleet] Hosts reporting in the last day",
                "Distinct hosts that sent results in the last 24 hours.",
                ("hosts", hosts("Hosts reporting", kql=f'{LAST_SEEN_FIELD} >= "now-24h"')),
                [],
                source=HOSTS_NOW,
            ),
            12,
            8,
        ),
        (
            metric(
                "flock-fleet-no-disk-encryption",
                "[Flock fleet] Hosts without disk encryption",
                "Distinct hosts whose system disk is unencrypted now (FileVault / LUKS).",
                ("hosts", hosts("Unencrypted hosts")),
                no_disk_encryption,
                source=NOW,
            ),
            12,
            8,
        ),
        (
            metric(
                "flock-fleet-no-firewall",
                "[Flock fleet] Hosts without a firewall",
                "macOS hosts whose application firewall is off now.",
                ("hosts", hosts("Hosts without firewall")),
                no_firewall,
                source=NOW,
            ),
            12,
            8,
        ),
        (
            table(
                "flock-fleet-seen-counts",
                f"[Flock fleet] Hosts known vs. seen in {SILENT_DAYS} days",
                f"Hosts that ever sent results, and those that did in the last {SILENT_DAYS}"
                " days; the difference went silent.",
                [],
                [
                    ("known", hosts("Known hosts")),
                    ("recent", hosts(f"Seen in {SILENT_DAYS} days", kql=SEEN_RECENTLY)),
                ],
                [],
                source=HOSTS_NOW,
            ),
            12,
            8,
        ),
        (
            table(
                "flock-fleet-silent-hosts",
                f"[Flock fleet] Hosts silent for {SILENT_DAYS} days",
                f"Hosts that have sent no results for {SILENT_DAYS} days, the longest silent"
                " first.",
                [
                    ("host", terms(HOST, "Host", size=1000)),
                    ("agent", terms(AGENT_NAME, "Agent name", size=1, missing=True)),
                    ("platform", terms(PLATFORM_FIELD, "Platform", size=1, missing=True)),
                    ("os", terms(OS_VERSION_FIELD, "OS version", size=1, missing=True)),
                ],
                [("seen", last_seen("Last seen", LAST_SEEN_FIELD))],
                [],
                sort=("seen", "asc"),
                source=(HOSTS_NOW[0], f"{HOSTS_NOW[1]} and {SILENT}"),
            ),
            48,
            15,
        ),
        (
            host_list(
                "flock-fleet-no-disk-encryption-hosts",
                "[Flock fleet] Unencrypted hosts",
                "Hosts whose system disk is unencrypted now.",
                no_disk_encryption,
                extra_rows=[
                    ("platform", terms(PLATFORM_FIELD, "Platform", size=1, missing=True)),
                    ("type", terms(result_column("name"), "Disk", size=3)),
                ],
            ),
            24,
            15,
        ),
        (
            host_list(
                "flock-fleet-no-firewall-hosts",
                "[Flock fleet] Hosts with the firewall off",
                "macOS hosts whose application firewall is off now.",
                no_firewall,
            ),
            24,
            15,
        ),
        (
            host_list(
                "flock-fleet-firewall-turned-off",
                "[Flock fleet] Firewall turned off in the last day",
                "History: macOS hosts that reported the application firewall off in the last"
                " 24 hours (a change, or a snapshot), even if it is on again now.",
                [*no_firewall, phrase(client_field("action"), "removed", negate=True)],
                source=HISTORY,
            ),
            48,
            15,
            LAST_DAY,
        ),
    ]
