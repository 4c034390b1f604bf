"""The panels of the three Flock dashboards, in the order they are laid out.

Each panel is ``(visualization, grid width, grid height[, panel time range])``. Panels of
one kind (an inventory table, a donut of a setting) are rows of data, one per panel.
"""

from __future__ import annotations

from kibana_lens import (
    AGENT_NAME,
    HOST,
    QUERY,
    TIME_FIELD,
    bars_over_time,
    count,
    donut,
    hosts,
    last_seen,
    metric,
    phrase,
    query_is,
    result_column,
    table,
    terms,
)

NOT_MACOS = phrase(result_column("os_platform"), "darwin", negate=True)


def inventory_table(vis_id, title, query, description, fields):
    """Which items (e.g. extensions) are present, on how many hosts: the most common first."""
    rows = [
        (f"c{i}", terms(result_column(col), label, size=size, order_by="hosts"))
        for i, (col, label, size) in enumerate(fields)
    ]
    return table(
        vis_id,
        title,
        description,
        rows,
        [("hosts", hosts()), ("seen", last_seen())],
        [query_is(query)],
        sort=("hosts", "desc"),
    )


def setting_donut(vis_id, title, query, description, column, label, extra=()):
    """Hosts per value of a single-row security setting (e.g. firewall state)."""
    return donut(
        vis_id,
        title,
        description,
        [("value", terms(result_column(column), label, size=5, order_by="hosts"))],
        ("hosts", hosts()),
        [query_is(query), *extra],
    )


def host_list(vis_id, title, description, filters, extra_rows=()):
    """Hosts matching ``filters`` with their agent name and last report time."""
    rows = [
        ("host", terms(HOST, "Host", size=500)),
        ("agent", terms(AGENT_NAME, "Agent name", size=1, missing=True)),
        *extra_rows,
    ]
    return table(
        vis_id, title, description, rows, [("seen", last_seen())], filters, sort=("seen", "desc")
    )


def overview_panels():
    """Operating systems and the data received, at the top of the "Flock" dashboard."""
    os_groups = [
        ("os", terms(result_column("name"), "Operating system", size=5, order_by="hosts")),
        ("version", terms(result_column("version"), "Version", size=10, order_by="hosts")),
    ]
    return [
        (
            donut(
                "flock-os-versions",
                "[Flock] Operating systems",
                "Distinct hosts per operating system and version (query os_version).",
                os_groups,
                ("hosts", hosts()),
                [query_is("os_version")],
            ),
            24,
            15,
        ),
        (
            host_list(
                "flock-os-versions-table",
                "[Flock] Operating systems table",
                "Each host with its operating system and version (query os_version).",
                [query_is("os_version")],
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
                "Result rows stored over time, split by osquery query name.",
                ("query", terms(QUERY, "Query", size=20, order_by="rows")),
                ("rows", count("Rows")),
                [],
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
        "Hosts whose system disk is encrypted or not (FileVault / LUKS).",
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
        "Hosts with each macOS sharing service turned on (query sharing_preferences).",
        [],
        [(svc, hosts(label, kql=f'{result_column(svc)} : "1"')) for svc, label in SHARING_SERVICES],
        [query_is("sharing_preferences")],
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
        "Cron jobs (command and crontab file) on Linux hosts, with the number of hosts.",
        [("command", "command", "Command", 200), ("path", "path", "Crontab", 3)],
    ),
    (
        "flock-linux-suid-binaries",
        "[Flock Linux] Setuid binaries",
        "suid_bin",
        "Setuid/setgid binaries on Linux hosts; the rare ones (fewest hosts) first.",
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
        "Entries of /etc/hosts on Linux hosts; the rare ones (fewest hosts) first.",
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
        [("hosts", hosts()), ("seen", last_seen())],
        [query_is(query), NOT_MACOS],
        sort=("hosts", "asc"),
    )


def linux_panels():
    return [
        (
            donut(
                "flock-linux-os-versions",
                "[Flock Linux] Distributions",
                "Distinct Linux hosts per distribution and version (query os_version).",
                [
                    ("os", terms(result_column("name"), "Distribution", size=10, order_by="hosts")),
                    (
                        "version",
                        terms(result_column("version"), "Version", size=10, order_by="hosts"),
                    ),
                ],
                ("hosts", hosts()),
                [query_is("os_version"), phrase(result_column("platform"), "darwin", negate=True)],
            ),
            24,
            15,
        ),
        (
            setting_donut(
                "flock-linux-disk-encryption",
                "[Flock Linux] Disk encryption",
                "disk_encryption",
                "Linux hosts whose root file system is on an encrypted (LUKS) device or not.",
                "encryption_status",
                "Encryption status",
                extra=(NOT_MACOS,),
            ),
            24,
            15,
        ),
        *((linux_items_table(*row), 48, 15) for row in LINUX_ITEMS),
    ]


# Panel-level time ranges override the dashboard's for the fleet overview.
LAST_DAY = {"from": "now-24h", "to": "now"}
LAST_90_DAYS = {"from": "now-90d", "to": "now"}
SILENT_KQL = f'{TIME_FIELD} >= "now-7d"'


def fleet_panels():
    no_disk_encryption = [query_is("disk_encryption"), phrase(result_column("encrypted"), "0")]
    no_firewall = [query_is("alf"), phrase(result_column("global_state"), "0")]
    return [
        (
            metric(
                "flock-fleet-hosts-last-day",
                "[Flock fleet] Hosts reporting in the last day",
                "Distinct hosts that sent any result row in the last 24 hours.",
                ("hosts", hosts("Hosts reporting")),
                [],
            ),
            12,
            8,
            LAST_DAY,
        ),
        (
            metric(
                "flock-fleet-no-disk-encryption",
                "[Flock fleet] Hosts without disk encryption",
                "Distinct hosts that reported an unencrypted system disk in the last 24 hours.",
                ("hosts", hosts("Unencrypted hosts")),
                no_disk_encryption,
            ),
            12,
            8,
            LAST_DAY,
        ),
        (
            metric(
                "flock-fleet-no-firewall",
                "[Flock fleet] Hosts without a firewall",
                "macOS hosts that reported the application firewall off in the last 24 hours.",
                ("hosts", hosts("Hosts without firewall")),
                no_firewall,
            ),
            12,
            8,
            LAST_DAY,
        ),
        (
            table(
                "flock-fleet-seen-counts",
                "[Flock fleet] Hosts seen: 90 days vs. 7 days",
                "Hosts seen in the last 90 and the last 7 days; the difference went silent.",
                [],
                [
                    ("h90", hosts("Seen in 90 days")),
                    ("h7", hosts("Seen in 7 days", kql=SILENT_KQL)),
                ],
                [],
            ),
            12,
            8,
            LAST_90_DAYS,
        ),
        (
            table(
                "flock-fleet-silent-hosts",
                "[Flock fleet] Hosts silent for a week",
                "Every host seen in 90 days, least recently seen first: rows in the last 7 days = 0"
                " means silent for a week.",
                [
                    ("host", terms(HOST, "Host", size=1000)),
                    ("agent", terms(AGENT_NAME, "Agent name", size=1, missing=True)),
                ],
                [
                    ("seen", last_seen("Last seen")),
                    ("week", count("Rows in the last 7 days", SILENT_KQL)),
                ],
                [],
                sort=("seen", "asc"),
            ),
            48,
            15,
            LAST_90_DAYS,
        ),
        (
            host_list(
                "flock-fleet-no-disk-encryption-hosts",
                "[Flock fleet] Unencrypted hosts",
                "Hosts that reported an unencrypted system disk in the last 24 hours.",
                no_disk_encryption,
                extra_rows=[("type", terms(result_column("name"), "Disk", size=3))],
            ),
            24,
            15,
            LAST_DAY,
        ),
        (
            host_list(
                "flock-fleet-no-firewall-hosts",
                "[Flock fleet] Hosts with the firewall off",
                "macOS hosts that reported the application firewall off in the last 24 hours.",
                no_firewall,
            ),
            24,
            15,
            LAST_DAY,
        ),
    ]
