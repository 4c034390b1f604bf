"""``flock-gateway`` admin command line (the HTTP API itself stays write-only).

Subcommands print JSON on stdout and exit 0 on success, 1 on failure, 2 on bad usage.
Commands that change storage report ``"changed": true|false`` so a deployment tool can
tell whether anything happened. ``check`` and every failure print
``{"ok": ..., "reason": <code>, "message": <text>}``: programs branch on ``reason``
(a stable code), people read ``message`` (also written to stderr on failure).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from .app import CannotStart, create_app
from .auth import USERNAME_RE
from .config import Config, ConfigError, load_config
from .errors import HttpError
from .indices import IndexNames
from .osquery_flags import flags_file
from .storage.client import (
    NOT_SET_UP,
    READ_ONLY,
    disk_full_message,
    make_client,
    probe,
    read_only_indices,
)
from .storage.errors import (
    StorageError,
    StorageFull,
    StorageRejected,
    StorageThrottled,
    StorageUnavailable,
)
from .storage.registry import Registry, UnknownAgent
from .storage.retention import prune
from .storage.state_prune import record_revocation, revocation_effective
from .storage.templates import missing_templates, setup_storage
from .validation import validate_name


class CliError(Exception):
    """A command's arguments are wrong."""


# How a failure is reported, by exception type (the first match wins): its reason code
# and what its message starts with.
FAILURES: tuple[tuple[type[Exception], str, str], ...] = (
    (ConfigError, "config_invalid", "configuration error: "),
    (CliError, "invalid_argument", ""),
    (HttpError, "invalid_argument", ""),
    (UnknownAgent, "unknown_agent", "no such agent: "),
    (CannotStart, "cannot_start", "cannot start: "),
    (StorageFull, "storage_full", "Elasticsearch is out of disk space: "),
    (StorageThrottled, "storage_throttled", "Elasticsearch error: "),
    (StorageUnavailable, "storage_unavailable", "Elasticsearch error: "),
    (StorageRejected, "storage_rejected", "Elasticsearch error: "),
    (StorageError, "storage_error", "Elasticsearch error: "),
)


def _out(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=False, default=str))


def _config(args: argparse.Namespace) -> Config:
    return load_config(path=args.config) if args.config else load_config()


def cmd_setup_storage(cfg: Config, args: argparse.Namespace) -> int:
    client = make_client(cfg)
    _out(setup_storage(client, IndexNames(cfg.index_prefix)))
    return 0


def cmd_check_config(cfg: Config, args: argparse.Namespace) -> int:
    # Loading the configuration already ran every check the gateway runs at start-up
    # (main() reports a ConfigError): a deployment tool validates a new file with this
    # before putting it in place.
    _out({"ok": True, "reason": "ok", "message": "configuration is valid"})
    return 0


def cmd_check(cfg: Config, args: argparse.Namespace) -> int:
    client = make_client(cfg)
    names = IndexNames(cfg.index_prefix)
    result = probe(client, cfg, names.agents)
    report: dict[str, Any] = {"ok": result.ok, "reason": result.reason, "message": result.message}
    blocked = read_only_indices(client, names) if result.ok else None
    if blocked:
        report.update(ok=False, reason=READ_ONLY, message=disk_full_message(blocked))
    if result.ok and args.templates:
        try:
            missing = missing_templates(client, names)
        except StorageRejected:
            # Reading index templates is a cluster privilege (manage_index_templates) that
            # would also let the gateway's write-only user rewrite them: with those
            # credentials the templates stay setup-storage's business (admin credentials).
            report["templates"] = "not visible to these credentials (403)"
            missing = []
        else:
            report["missing_templates"] = missing
        if missing:
            report["ok"] = False
            report["reason"] = NOT_SET_UP
            report["message"] = "templates missing: run `flock-gateway setup-storage`"
    _out(report)
    return 0 if report["ok"] else 1


def _registry(cfg: Config) -> Registry:
    return Registry(make_client(cfg), IndexNames(cfg.index_prefix).agents)


def _username(value: str) -> str:
    if not USERNAME_RE.fullmatch(value):
        raise CliError(f"not a valid username: {value!r}")
    return value


def cmd_agents_list(cfg: Config, args: argparse.Namespace) -> int:
    agents = [
        {
            "username": a.username,
            "name": a.name,
            "source": a.source,
            "created": a.created,
            "host_identifier": a.host_identifier,
            "last_seen": a.last_seen,
            "reenrollments": a.reenrollments,
            "pending": a.pending,
        }
        for a in _registry(cfg).list()
    ]
    if args.json:
        _out(agents)
    else:
        for a in agents:
            print(f"{a['username']}\t{a['name']}\t{a['source']}\t{a['created']}")
    return 0


def cmd_agents_rename(cfg: Config, args: argparse.Namespace) -> int:
    name = validate_name(args.name)
    _registry(cfg).rename(_username(args.username), name)
    _out({"changed": True, "username": args.username, "name": name})
    return 0


def cmd_agents_revoke(cfg: Config, args: argparse.Namespace) -> int:
    username = _username(args.username)
    client = make_client(cfg)
    names = IndexNames(cfg.index_prefix)
    registry = Registry(client, names.agents)
    try:
        canonical = registry.revoke(username).username
    except UnknownAgent:
        # A run again after a failure past the delete: the state may still be unswept.
        record_revocation(client, names, username, revocation_effective(cfg.auth_cache_ttl))
        raise
    # what the gateway received with the credential goes with the next prune
    record_revocation(client, names, canonical, revocation_effective(cfg.auth_cache_ttl))
    _out(
        {
            "changed": True,
            "username": args.username,
            "note": f"effective within auth_cache_ttl={cfg.auth_cache_ttl}s; "
            "its current state goes with the next prune",
        }
    )
    return 0


def cmd_agents_allow_reenroll(cfg: Config, args: argparse.Namespace) -> int:
    _registry(cfg).allow_reenroll(_username(args.username))
    _out({"changed": True, "username": args.username, "note": "valid for one re-enrollment"})
    return 0


def cmd_prune(cfg: Config, args: argparse.Namespace) -> int:
    days = args.days if args.days is not None else cfg.retention_days
    if days < 1:
        raise CliError("--days must be >= 1")
    max_bytes = args.max_bytes if args.max_bytes is not None else cfg.retention_max_bytes
    if max_bytes < 0:
        raise CliError("--max-bytes must be >= 0")
    client = make_client(cfg)
    names = IndexNames(cfg.index_prefix)
    _out(prune(client, names, days, dry_run=args.dry_run, max_bytes=max_bytes))
    return 0


def cmd_run_dev(cfg: Config, args: argparse.Namespace) -> int:
    app = create_app(cfg)
    print(f"flock-gateway (development server) on http://{args.host}:{args.port}", flush=True)
    app.run(host=args.host, port=args.port, threaded=True, use_reloader=False)
    return 0


def cmd_osquery_flags(cfg: Config, args: argparse.Namespace) -> int:
    url = args.url or cfg.public_url
    if not url:
        raise CliError("give --url https://gateway.example.org or set public_url")
    try:
        text = flags_file(url, args.ca_path, args.secret_path, cfg.osquery_max_lines)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    sys.stdout.write(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flock-gateway",
        description="Flock gateway admin commands (configuration: FLOCK_* env, FLOCK_CONFIG)",
    )
    parser.add_argument("--config", help="TOML config file (default: $FLOCK_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("setup-storage", help="install/upgrade index templates and registry")
    p.set_defaults(func=cmd_setup_storage)

    p = sub.add_parser(
        "check-config",
        help="validate the configuration as the gateway does at start-up (no network)",
    )
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("check", help="check Elasticsearch connectivity and credentials")
    p.add_argument(
        "--no-templates",
        dest="templates",
        action="store_false",
        help="do not check that the index templates are installed",
    )
    p.set_defaults(func=cmd_check)

    agents = sub.add_parser("agents", help="list, rename or revoke registered agents")
    asub = agents.add_subparsers(dest="agents_command", required=True)
    p = asub.add_parser("list", help="list agents (never shows tokens)")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(func=cmd_agents_list)
    p = asub.add_parser("rename", help="change an agent's display name")
    p.add_argument("username")
    p.add_argument("name")
    p.set_defaults(func=cmd_agents_rename)
    p = asub.add_parser(
        "revoke",
        help="delete an agent; its token stops working (safe to re-run after a failure)",
    )
    p.add_argument("username")
    p.set_defaults(func=cmd_agents_revoke)
    p = asub.add_parser(
        "allow-reenroll",
        help="let an osquery host enroll again although it was seen recently (once)",
    )
    p.add_argument("username")
    p.set_defaults(func=cmd_agents_allow_reenroll)

    p = sub.add_parser(
        "prune",
        help="delete daily indices older than the retention period, then the oldest ones "
        "over the disk budget",
    )
    p.add_argument("--days", type=int, help="override retention_days")
    p.add_argument(
        "--max-bytes",
        type=int,
        help="override retention_max_bytes: then delete the oldest indices (never the "
        "current one) until the daily indices take at most this many bytes; 0: no budget",
    )
    p.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    p.set_defaults(func=cmd_prune)

    p = sub.add_parser("osquery-flags", help="print the osquery flags file for laptops")
    p.add_argument("--url", help="public gateway URL (default: public_url)")
    p.add_argument("--ca-path", default="/etc/osquery/flock-ca.pem", help="CA file on laptops")
    p.add_argument(
        "--secret-path",
        default="/etc/osquery/flock-enroll-secret",
        help="enrollment secret file on laptops",
    )
    p.set_defaults(func=cmd_osquery_flags)

    p = sub.add_parser("run-dev", help="run the development server (not for production)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.set_defaults(func=cmd_run_dev)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = _config(args)
        return int(args.func(cfg, args))
    except tuple(cls for cls, _, _ in FAILURES) as exc:
        return _fail(exc)


def _fail(exc: Exception) -> int:
    reason, lead = next((code, lead) for cls, code, lead in FAILURES if isinstance(exc, cls))
    message = f"{lead}{exc}"
    _out({"ok": False, "reason": reason, "message": message})
    print(f"flock-gateway: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
