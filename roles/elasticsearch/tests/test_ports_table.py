"""The README's ports table says the ports the roles deploy by default."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROLES = Path(__file__).parents[2]
README = ROLES / "elasticsearch" / "README.md"
ROW = re.compile(r"^\| (\d+)/tcp [^|]*\|[^|]*\|[^|]*\| `(\w+)` \|$")


def _rows() -> list[tuple[int, str]]:
    text = README.read_text()
    section = text.split("## Addresses and ports", 1)[1].split("\n## ", 1)[0]
    return [(int(m[1]), m[2]) for line in section.splitlines() if (m := ROW.match(line))]


def test_every_port_row_is_its_variables_default():
    rows = _rows()
    assert [port for port, _ in rows] == [9200, 9300, 5601, 8443]
    for port, variable in rows:
        role = variable.split("_", 1)[0]
        defaults = yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())
        assert defaults[variable] == port, f"{variable} in roles/{role}: {defaults[variable]}"
