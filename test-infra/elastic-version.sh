#!/usr/bin/env bash
# Prints the Elastic Stack version a site deploys: the flock role's flock_elastic_version.
# The test nodes built here default to it, so they are the version the roles install.
set -euo pipefail
defaults=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/roles/flock/defaults/main.yml
version=$(sed -n 's/^flock_elastic_version: *"\{0,1\}\([0-9][0-9.]*\)"\{0,1\} *$/\1/p' "$defaults")
if [ -z "$version" ]; then
  echo "elastic-version.sh: no flock_elastic_version: \"x.y.z\" line in $defaults" >&2
  exit 1
fi
echo "$version"
