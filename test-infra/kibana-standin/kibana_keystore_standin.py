#!/usr/bin/env python3
"""STAND-IN for Kibana's ``bin/kibana-keystore``. This is NOT Kibana's keystore tool.

It keeps the commands, options, messages and exit codes the kibana role relies on, and
the file's place (``$KBN_PATH_CONF/kibana.keystore``, else ``$KBN_HOME/config``):

* ``create`` (refuses to replace an existing keystore without ``--force``);
* ``list``: one setting name a line;
* ``add <setting> --stdin [--force]``: the value read from standard input; an existing
  setting is only replaced with ``--force`` (Kibana would prompt);
* ``remove <setting>``.

Kibana's file is obfuscated (AES-GCM with an empty password); this one is JSON, so its
format is not Kibana's. ``kibana_standin.py`` reads the settings from it at start-up as
Kibana does. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

FORMAT = "kibana-keystore STAND-IN (JSON, not Kibana's format)"


def keystore_path() -> Path:
    home = os.environ.get("KBN_HOME") or str(Path(__file__).resolve().parents[1])
    conf_dir = os.environ.get("KBN_PATH_CONF") or os.path.join(home, "config")
    return Path(conf_dir) / "kibana.keystore"


def read_keystore(path: Path) -> dict[str, str]:
    """The settings of the keystore at ``path``; empty when there is none."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return dict(data["settings"])


def _write(path: Path, settings: dict[str, str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o660)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"format": FORMAT, "settings": settings}, fh, sort_keys=True)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kibana-keystore", description=FORMAT)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create")
    create.add_argument("-f", "--force", action="store_true")
    commands.add_parser("list")
    add = commands.add_parser("add")
    add.add_argument("key")
    add.add_argument("-f", "--force", action="store_true")
    add.add_argument("-x", "--stdin", action="store_true")
    remove = commands.add_parser("remove")
    remove.add_argument("key")
    args = parser.parse_args(argv)

    path = keystore_path()
    if args.command == "create":
        if path.exists() and not args.force:
            print("A Kibana keystore already exists. Use --force to overwrite.", file=sys.stderr)
            return 1
        _write(path, {})
        print(f"Created Kibana keystore in {path}")
        return 0
    if not path.exists():
        print(
            "ERROR: Kibana keystore not found. Use 'create' command to create one.", file=sys.stderr
        )
        return 1
    settings = read_keystore(path)
    if args.command == "list":
        for key in sorted(settings):
            print(key)
        return 0
    if args.command == "add":
        if args.key in settings and not args.force:
            print(f"Setting {args.key} already exists. Use --force to overwrite.", file=sys.stderr)
            return 1
        if not args.stdin:
            print("The stand-in reads values from --stdin only.", file=sys.stderr)
            return 1
        settings[args.key] = sys.stdin.read()
        _write(path, settings)
        return 0
    if args.key not in settings:
        print(f"ERROR: Setting {args.key} does not exist in the keystore.", file=sys.stderr)
        return 1
    del settings[args.key]
    _write(path, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
