#!/usr/bin/env bash
# Role variable references. Each role's meta/argument_specs.yml is the one description of its
# variables (type, default, choices, what they do); aar-doc (pinned in
# requirements/controller.txt) renders it with scripts/role-docs.md.j2 into the role's
# README.md, between <!-- BEGIN_ANSIBLE_DOCS --> and <!-- END_ANSIBLE_DOCS -->.
#
#   scripts/role-docs.sh           regenerate every role's section
#   scripts/role-docs.sh --check   regenerate into a temporary copy and fail if a README
#                                  differs (run by scripts/lint.sh)
#
# Both also hold each spec to the role's defaults/main.yml, which has the values the role
# actually runs with (Ansible never applies a spec's default): the same variables, equal
# literal defaults, and "Default: ..." in the description where defaults/main.yml computes
# the value (a spec default is templated when the role runs, so it stays literal).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

check=false
case "${1:-}" in
  --check) check=true ;;
  "") ;;
  *)
    echo "usage: scripts/role-docs.sh [--check]" >&2
    exit 2
    ;;
esac

aar_doc=$repo/.venv/bin/aar-doc
template=$repo/scripts/role-docs.md.j2
if [[ ! -x $aar_doc ]]; then
  echo "role-docs: $aar_doc not found: run scripts/bootstrap.sh" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

failed=()
for dir in roles/*/; do
  role=$(basename "$dir")
  readme=roles/$role/README.md
  if [[ ! -f roles/$role/meta/argument_specs.yml || ! -f $readme ]]; then
    echo "role-docs: roles/$role needs meta/argument_specs.yml and README.md" >&2
    failed+=("$role")
    continue
  fi
  out=$repo/$readme
  if $check; then
    out=$tmp/$role.README.md
    cp "$readme" "$out"
  fi
  # aar-doc is silent when it succeeds; some of its complaints (a spec that is not valid
  # YAML) come with exit status 0 and an empty table, so any output counts as a failure.
  if ! "$aar_doc" --output-file "$out" --output-template "$template" --output-mode inject \
    "roles/$role" markdown >"$tmp/aar-doc.log" 2>&1 || [[ -s $tmp/aar-doc.log ]]; then
    echo "role-docs: aar-doc failed for roles/$role:" >&2
    cat "$tmp/aar-doc.log" >&2
    failed+=("$role")
    continue
  fi
  if $check && ! cmp -s "$readme" "$out"; then
    echo "role-docs: $readme is out of date with roles/$role/meta/argument_specs.yml:" \
      "run scripts/role-docs.sh and commit the result. Difference:" >&2
    diff -u "$readme" "$out" | head -n 40 >&2 || true
    failed+=("$role")
  fi
done

# Each spec against its role's defaults/main.yml; prints the roles that disagree.
if ! disagree=$("$repo/.venv/bin/python" - roles/*/ <<'PY'
import json
import sys
from pathlib import Path

import yaml

bad = set()
for role_dir in map(Path, sys.argv[1:]):
    spec_file, defaults_file = role_dir / "meta/argument_specs.yml", role_dir / "defaults/main.yml"
    if not spec_file.is_file():
        continue

    def problem(name, text):
        print(f"role-docs: roles/{role_dir.name}: {name}: {text}", file=sys.stderr)
        bad.add(role_dir.name)

    try:
        specs = yaml.safe_load(spec_file.read_text())["argument_specs"]
        defaults = (yaml.safe_load(defaults_file.read_text()) if defaults_file.is_file() else {}) or {}
    except (yaml.YAMLError, KeyError, TypeError) as exc:
        problem("meta/argument_specs.yml or defaults/main.yml", f"cannot be read: {exc}")
        continue
    options = {name: o for spec in specs.values() for name, o in (spec.get("options") or {}).items()}

    for name in sorted(set(defaults) - set(options)):
        problem(name, "in defaults/main.yml but not in meta/argument_specs.yml")
    for name, o in options.items():
        if name not in defaults:
            if not o.get("required"):
                problem(name, "not required, but has no value in defaults/main.yml")
            continue
        value = defaults[name]
        description = o.get("description") or ""
        description = description if isinstance(description, str) else " ".join(description)
        if "default" in o:
            if "{{" in json.dumps(o["default"]):
                problem(name, "a spec default is templated when the role runs: keep it literal")
            elif json.dumps(o["default"], sort_keys=True) != json.dumps(value, sort_keys=True):
                problem(name, f"spec default {o['default']!r} differs from defaults/main.yml {value!r}")
        elif o.get("required"):
            pass
        elif "{{" not in json.dumps(value):
            problem(name, f"add `default: {json.dumps(value)}` (its value in defaults/main.yml) to the spec")
        elif "Default:" not in description:
            problem(name, "computed in defaults/main.yml: say what it is in the description ('Default: ...')")
print(" ".join(sorted(bad)))
sys.exit(1 if bad else 0)
PY
); then
  failed+=("${disagree:-the spec check}")
fi

if ((${#failed[@]})); then
  echo "role-docs: failed for: $(printf '%s\n' "${failed[@]}" | sort -u | paste -sd ' ')" >&2
  exit 1
fi
