"""Summarise a py-spy ``--format raw`` profile (collapsed stacks) of the gateway.

    python gateway/bench/profile_top.py PROFILE.txt

Prints the functions with the most self time, and a split of all samples by area of the
request path (gunicorn, Flask, the gateway's modules, the Elasticsearch client...): each
sample goes to the area of its innermost frame that belongs to one (time in the standard
library or in C goes to the area that called it), so the shares add up to 100%.
"""

from __future__ import annotations

import re
import sys
from collections import Counter

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# first match wins: (area, start of the frame's file path as py-spy shortens it, or a
# substring of it after a "/")
_AREAS = (
    ("gateway: logging", "flock_gateway/logging.py"),
    ("gateway: documents", "flock_gateway/documents.py"),
    ("gateway: validation", "flock_gateway/validation.py"),
    ("gateway: rows (and the accelerator)", "flock_gateway/rows.py"),
    ("gateway: rows (and the accelerator)", "flock_gateway/accelerator.py"),
    ("gateway: ndjson", "flock_gateway/storage/ndjson.py"),
    ("gateway: batcher", "flock_gateway/storage/batcher.py"),
    ("gateway: results (bulk write)", "flock_gateway/storage/results.py"),
    ("gateway: bulk transport", "flock_gateway/storage/bulk_http.py"),
    ("gateway: auth", "flock_gateway/auth.py"),
    ("gateway: api", "flock_gateway/api/"),
    ("gateway: app", "flock_gateway/app.py"),
    ("elasticsearch client", "elasticsearch/"),
    ("elastic_transport", "elastic_transport/"),
    ("urllib3", "urllib3/"),
    ("http.client", "http/client.py"),
    ("stdlib logging", "logging/__init__.py"),
    ("flask", "flask/"),
    ("werkzeug", "werkzeug/"),
    ("gunicorn", "gunicorn/"),
    ("json (stdlib)", "json/"),
)


def _parse(line: str) -> tuple[list[tuple[str, str]], int] | None:
    stack, _, count = line.rstrip("\n").rpartition(" ")
    if not stack or not count.isdigit():
        return None
    frames = []
    for part in stack.split(";"):
        m = _FRAME.match(part)
        if m:
            frames.append((m["func"], m["file"] or ""))
    return frames, int(count)


def _area(frames: list[tuple[str, str]]) -> str:
    for _, path in reversed(frames):
        for area, needle in _AREAS:
            if path.startswith(needle) or "/" + needle in path:
                return area
    return "other"


def summarise(text: str, title: str = "profile", top: int = 15) -> str:
    total = 0
    self_time: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    for line in text.splitlines():
        parsed = _parse(line)
        if parsed is None:
            continue
        frames, count = parsed
        total += count
        if frames:
            func, path = frames[-1]
            short = "/".join(path.split("/")[-2:])
            self_time[f"{func} ({short})"] += count
        areas[_area(frames)] += count
    if not total:
        return f"{title}: no samples"
    lines = [f"{title}: {total} samples on CPU", "  self time:"]
    for name, n in self_time.most_common(top):
        lines.append(f"    {100 * n / total:5.1f}%  {name}")
    lines.append("  by area (innermost):")
    for name, n in areas.most_common():
        lines.append(f"    {100 * n / total:5.1f}%  {name}")
    return "\n".join(lines)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(summarise(f.read(), title=sys.argv[1]))
