#!/usr/bin/env bash
# Build the "offline artifact" for the kibana role's archive install path in tests:
# a tarball laid out like Kibana's (kibana-<version>/bin/kibana reading
# $KBN_PATH_CONF/kibana.yml) that contains the Kibana HTTP API STAND-IN, not Kibana.
# Cached by content in ${FLOCK_CACHE:-$HOME/.cache/flock}/kibana-standin/.
# Prints the tarball's absolute path as the last line of stdout.
#   [KIBANA_STANDIN_VERSION=x.y.z] test-infra/kibana-standin/build.sh
#   (default: the version the roles deploy, test-infra/elastic-version.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=${KIBANA_STANDIN_VERSION:-$("$here/../elastic-version.sh")}
cache=${FLOCK_CACHE:-$HOME/.cache/flock}/kibana-standin
mkdir -p "$cache"

key=$( (echo "$version"; cd "$here" && cat build.sh kibana_standin.py kibana_keystore_standin.py \
        layout/bin/kibana layout/bin/kibana-keystore layout/config/kibana.yml \
        layout/STANDIN-NOT-KIBANA.txt) \
      | sha256sum | cut -c1-12)
tarball=$cache/kibana-$version-standin-$key.tar.gz
if [[ -s $tarball ]]; then
  echo "kibana stand-in: cached" >&2
  echo "$tarball"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
top=$work/kibana-$version
mkdir -p "$top/lib" "$top/data"
cp -r "$here/layout/." "$top/"
cp "$here/kibana_standin.py" "$here/kibana_keystore_standin.py" "$top/lib/"
printf '{"name": "kibana-standin", "version": "%s", "standin": true}\n' "$version" \
  >"$top/package.json"
chmod -R u=rwX,go=rX "$top"
chmod 0755 "$top/bin/kibana" "$top/bin/kibana-keystore"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
  -C "$work" -cf - "kibana-$version" | gzip -n >"$tarball.tmp"
mv "$tarball.tmp" "$tarball"
echo "kibana stand-in: built" >&2
echo "$tarball"
