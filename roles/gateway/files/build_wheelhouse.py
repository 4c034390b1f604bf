#!/usr/bin/env python3
"""Build (or index) the gateway wheelhouse on the controller.

    build_wheelhouse.py --out DIR [--source DIR] [--version-suffix S] [--constraints F]
                        [--rowpath auto|required|never]
    build_wheelhouse.py --out DIR --prebuilt

Build mode copies the gateway source to a scratch directory (the repo stays clean),
optionally appends a suffix to its version, and runs `pip wheel` for it and its
dependencies with SOURCE_DATE_EPOCH fixed so that the same source gives the same bytes.
The result replaces DIR only when its content differs (same content: DIR untouched).
Prebuilt mode only indexes DIR as the operator prepared it.

The gateway's compiled row path (SOURCE/rowpath, Rust, optional: the gateway runs without
it, at 1.4-1.6 times the CPU per row on large batches) is built into the wheelhouse too
when ``--rowpath`` is ``required``, or ``auto`` (the default) and cargo is on the PATH;
cargo's build directory (.rowpath-target) is kept beside DIR, so a rebuild compiles only
what changed.

A build is skipped when the source tree, suffix and constraints are those of the last
build (stamp file in DIR): dependencies are resolved again only when the source changes.

Both modes also write DIR.tar (deterministic: sorted, fixed mtimes/owners), which is
what the role copies to the targets (one transfer instead of one per wheel).

Prints one JSON object: changed, version, digest (sha256 over the wheels' names and
contents), release (<version>-<digest[:12]>), python (X.Y of the interpreter that
built it), wheels (file names), rowpath (whether the compiled row path is among them),
archive (path of DIR.tar).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

IGNORE = shutil.ignore_patterns(
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    "tests",
    "bench",
    "*.pyc",
    "target",
)
WHEEL_RE = re.compile(r"^flock_gateway-([^-]+)-.*\.whl$")
ROWPATH_RE = re.compile(r"^flock_gateway_rowpath-[^-]+-.*\.whl$")


def index(wheel_dir: Path) -> dict:
    wheels = sorted(p.name for p in wheel_dir.glob("*.whl"))
    own = [m.group(1) for m in (WHEEL_RE.match(n) for n in wheels) if m]
    if len(own) != 1:
        raise SystemExit(f"{wheel_dir}: expected exactly one flock_gateway wheel, found {len(own)}")
    digest = hashlib.sha256()
    for name in wheels:
        digest.update(name.encode() + b"\0")
        digest.update(hashlib.sha256((wheel_dir / name).read_bytes()).digest())
    hexdigest = digest.hexdigest()
    return {
        "version": own[0],
        "digest": hexdigest,
        "release": f"{own[0]}-{hexdigest[:12]}",
        "wheels": wheels,
        "rowpath": any(ROWPATH_RE.match(n) for n in wheels),
    }


STAMP = ".flock-source-stamp"


def with_rowpath(source: Path, mode: str) -> bool:
    """Whether to build the compiled row path: ``required`` fails without a toolchain."""
    if mode == "never":
        return False
    present = (source / "rowpath" / "pyproject.toml").is_file()
    cargo = shutil.which("cargo") is not None
    if mode == "required" and not (present and cargo):
        missing = "cargo (Rust) on the PATH" if present else f"{source}/rowpath"
        raise SystemExit(f"the compiled row path is required, but {missing} is missing")
    return present and cargo


def source_stamp(source: Path, suffix: str, constraints: str, rowpath: bool) -> str:
    digest = hashlib.sha256(f"{suffix}\0{sys.version_info[:2]}\0{rowpath}\0".encode())
    if constraints:
        digest.update(Path(constraints).read_bytes())
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "src"
        shutil.copytree(source, copy, ignore=IGNORE)
        for path in sorted(p for p in copy.rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(copy)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def write_archive(wheel_dir: Path) -> Path:
    """DIR.tar with the wheels, byte-identical for identical wheels."""
    archive = wheel_dir.with_name(wheel_dir.name + ".tar")
    tmp = archive.with_name(f".{archive.name}.{os.getpid()}")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(p.name for p in wheel_dir.glob("*.whl")):
            info = tar.gettarinfo(str(wheel_dir / name), arcname=name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 315532800, 0, 0, "", ""
            info.mode = 0o644
            with open(wheel_dir / name, "rb") as fh:
                tar.addfile(info, fh)
    if archive.exists() and archive.read_bytes() == tmp.read_bytes():
        tmp.unlink()
    else:
        tmp.replace(archive)
    return archive


def build(
    source: Path, out: Path, suffix: str, constraints: str, rowpath: bool
) -> tuple[dict, bool]:
    stamp = source_stamp(source, suffix, constraints, rowpath)
    stamp_file = out / STAMP
    if stamp_file.is_file() and stamp_file.read_text().strip() == stamp:
        try:
            return index(out), False
        except SystemExit:
            pass
    info, changed = _build(source, out, suffix, constraints, rowpath)
    (out / STAMP).write_text(stamp + "\n")
    return info, changed


def _build(
    source: Path, out: Path, suffix: str, constraints: str, rowpath: bool
) -> tuple[dict, bool]:
    with tempfile.TemporaryDirectory(prefix="flock-wheelhouse-") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(source, src, ignore=IGNORE)
        if suffix:
            pyproject = src / "pyproject.toml"
            text = pyproject.read_text(encoding="utf-8")
            text, count = re.subn(
                r'(?m)^(version\s*=\s*")([^"]+)(")', rf"\g<1>\g<2>{suffix}\g<3>", text, count=1
            )
            if count != 1:
                raise SystemExit(f"{pyproject}: no version line to suffix")
            pyproject.write_text(text, encoding="utf-8")
        wheels = Path(tmp) / "wheels"
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--disable-pip-version-check",
            "--wheel-dir",
            str(wheels),
        ]
        if constraints:
            cmd += ["--constraint", constraints]
        cmd.append(str(src))
        env = dict(os.environ, SOURCE_DATE_EPOCH="315532800", PIP_NO_INPUT="1")
        if rowpath:
            cmd.append(str(src / "rowpath"))
            # beside DIR, shared by the wheelhouses of one directory (a release and its
            # rebuilds): the crates it depends on are compiled once
            env.setdefault("CARGO_TARGET_DIR", str(out.parent.resolve() / ".rowpath-target"))
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)  # noqa: S603
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
            raise SystemExit("pip wheel failed:\n" + "\n".join(tail))
        new = index(wheels)
        if out.is_dir() and any(out.glob("*.whl")):
            try:
                if index(out)["digest"] == new["digest"]:
                    return new, False
            except SystemExit:
                pass
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        for whl in wheels.glob("*.whl"):
            shutil.copy2(whl, staging / whl.name)
        staging.chmod(0o755)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            out.rename(old / "wheels")
            staging.rename(out)
            shutil.rmtree(old)
        else:
            staging.rename(out)
        return new, True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--source", type=Path)
    parser.add_argument("--version-suffix", default="")
    parser.add_argument("--constraints", default="")
    parser.add_argument("--rowpath", choices=("auto", "required", "never"), default="auto")
    parser.add_argument("--prebuilt", action="store_true")
    args = parser.parse_args()
    if args.prebuilt:
        if not args.out.is_dir():
            raise SystemExit(f"prebuilt wheelhouse {args.out} does not exist")
        info, changed = index(args.out), False
    else:
        if args.source is None or not (args.source / "pyproject.toml").is_file():
            raise SystemExit(f"gateway source {args.source} has no pyproject.toml")
        if args.version_suffix and not re.fullmatch(r"[A-Za-z0-9.+]+", args.version_suffix):
            raise SystemExit("version suffix: letters, digits, '.' and '+' only")
        source = args.source.resolve()
        info, changed = build(
            source,
            args.out,
            args.version_suffix,
            args.constraints,
            with_rowpath(source, args.rowpath),
        )
    info["archive"] = str(write_archive(args.out))
    info["changed"] = changed
    info["python"] = f"{sys.version_info.major}.{sys.version_info.minor}"
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
