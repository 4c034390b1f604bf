"""The README's layout table is the architecture document's first picture, and true."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _layout_table(text: str) -> list[str]:
    start = text.index("| path | what it holds |")
    rows = []
    for line in text[start:].splitlines():
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def test_readme_shows_the_architecture_documents_table():
    readme = _layout_table((ROOT / "README.md").read_text(encoding="utf-8"))
    architecture = _layout_table((ROOT / "docs/ARCHITECTURE.md").read_text(encoding="utf-8"))
    assert readme == architecture


def test_every_path_in_the_table_exists():
    rows = _layout_table((ROOT / "docs/ARCHITECTURE.md").read_text(encoding="utf-8"))[2:]
    missing = []
    for row in rows:
        first_cell = row.split("|")[1]
        for path in re.findall(r"`([^`]+)`", first_cell):
            if "<" in path:  # a placeholder such as molecule/<scenario>/
                path = path.split("<")[0]
            if not (ROOT / path).exists():
                missing.append(path)
    assert not missing
