#!/usr/bin/env bash
# Builds (once, cached) a tarball of a real Elasticsearch node from Maven Central jars.
#
#   build.sh                   plain node (no x-pack): elasticsearch-node-<ver>-<hash>.tar.gz
#   build.sh --with-security   plus x-pack-core + x-pack-security: elasticsearch-node-security-<ver>-<hash>.tar.gz
#                              (or ES_FLAVOUR=security build.sh)
#   ES_VERSION=8.19.20 build.sh   another release (default: the version the roles deploy,
#                              test-infra/elastic-version.sh). Maven Central serves the
#                              server, transport-netty4 and the entitlement bridge for 8.19.20 and
#                              8.19.21 (the rolling-upgrade scenario uses both); x-pack-security
#                              only for 8.19.21, so --with-security is 8.19.21 only.
#
# Last stdout line: the absolute tarball path; everything else goes to stderr.
# The hash covers every input of the recipe (and the flavour), so changing any of them rebuilds.
# Needs: bash, mvn, a JDK 17+ (javac/jar: JAVA_HOME or PATH), tar, unzip, flock, sha256sum.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ES_VERSION=${ES_VERSION:-$("$HERE/../elastic-version.sh")}
# What Maven Central serves (a fact about the repository, not the deployed version).
XPACK_SECURITY_VERSIONS="8.19.21"
CACHE=${FLOCK_CACHE:-$HOME/.cache/flock}/elasticsearch-node
MVN_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

# ES_FLAVOUR=security is the same as --with-security (for callers that pass only environment).
case "${1:-}${ES_FLAVOUR:+:$ES_FLAVOUR}" in
  ""|:plain) flavour=plain; name=elasticsearch-node ;;
  --with-security|:security|--with-security:security) flavour=security; name=elasticsearch-node-security ;;
  *) echo "usage: [ES_VERSION=8.19.x] $0 [--with-security]" >&2; exit 64 ;;
esac
[[ $ES_VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "build.sh: ES_VERSION=$ES_VERSION is not x.y.z" >&2; exit 64; }
if [ "$flavour" = security ] && [[ " $XPACK_SECURITY_VERSIONS " != *" $ES_VERSION "* ]]; then
  echo "build.sh: --with-security needs ES_VERSION in $XPACK_SECURITY_VERSIONS (x-pack-security $ES_VERSION is not on Maven Central)" >&2
  exit 64
fi

cd "$HERE"
hash=$( { echo "$flavour"; for f in build.sh pom.xml $(find launcher dist xpack -type f | LC_ALL=C sort); do
            printf '%s\0' "$f"; sha256sum < "$f"; done; } | sha256sum | cut -c1-12)
artifact="$CACHE/$name-$ES_VERSION-$hash.tar.gz"

mkdir -p "$CACHE"
# Parallel callers (several Molecule scenarios) wait for one build instead of racing.
exec 9> "$CACHE/.lock"
flock 9
if [ -f "$artifact" ]; then
  echo "$artifact"
  exit 0
fi

echo "building Elasticsearch $ES_VERSION node ($flavour) from Maven Central (first run only, ~1-2 min)" >&2
if [ -n "${JAVA_HOME:-}" ]; then JDK_BIN="$JAVA_HOME/bin/"; else JDK_BIN=""; fi
work=$(mktemp -d "$CACHE/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
home="$work/elasticsearch-$ES_VERSION"
mkdir -p "$home"/{lib/entitlement-bridge,lib/entitlement-agent,lib/launcher,lib/tools/ansi-console,lib/tools/keystore-cli} \
  "$home"/{modules/transport-netty4,modules/flock-rest-root,modules/flock-analysis,plugins,logs}

# fetch <pom> <dir>: the pom's runtime dependency jars. Quiet unless it fails (mvn 3.8 -q still
# prints colour codes), then show its log.
fetch() {
  if ! mvn -q -B -Dstyle.color=never -Des.version="$ES_VERSION" -f "$1" "$MVN_PLUGIN:copy-dependencies" \
    -DincludeScope=runtime -DoutputDirectory="$2" > "$work/mvn.log" 2>&1; then
    cat "$work/mvn.log" >&2
    echo "build.sh: mvn failed (Maven Central reachable? https://repo1.maven.org/maven2)" >&2
    exit 1
  fi
}
# artifact name of a jar file: netty-codec-4.1.135.Final.jar -> netty-codec
jar_name() { basename "$1" | sed -E 's/-[0-9][A-Za-z0-9._-]*\.jar$//'; }
# module_files <module>: Elastic ships each module's descriptor and entitlement policy inside its
# jar; the plugin loader reads them from the module directory.
module_files() {
  for f in plugin-descriptor.properties entitlement-policy.yaml; do
    unzip -p "$home/modules/$1/$1-$ES_VERSION.jar" "META-INF/es-plugins/$1/$f" > "$home/modules/$1/$f"
  done
}

fetch "$HERE/pom.xml" "$work/jars"
# Same split as Elastic's distribution: netty, the transport module and ssl-config live in
# modules/ (own module layer; x-pack-core brings its own ssl-config and a copy in lib/ would be
# jar hell); the bridge is patched into java.base by bin/elasticsearch; the rest is lib/.
for jar in "$work"/jars/*.jar; do
  case "$(basename "$jar")" in
    netty-*|transport-netty4-*|elasticsearch-ssl-config-*) mv "$jar" "$home/modules/transport-netty4/" ;;
    elasticsearch-entitlement-bridge-*) mv "$jar" "$home/lib/entitlement-bridge/" ;;
    *) mv "$jar" "$home/lib/" ;;
  esac
done
module_files transport-netty4
# Patch-module ignores module-info.class (with a warning on every start), so drop it.
(cd "$work" && mkdir bridge && cd bridge && "${JDK_BIN}jar" -xf "$home"/lib/entitlement-bridge/*.jar \
  && rm module-info.class && "${JDK_BIN}jar" --create --file "$(echo "$home"/lib/entitlement-bridge/*.jar)" \
  --manifest META-INF/MANIFEST.MF -C . org META-INF/LICENSE.txt META-INF/NOTICE.txt)

if [ "$flavour" = security ]; then
  fetch "$HERE/xpack/core-pom.xml" "$work/xcore"
  fetch "$HERE/xpack/security-pom.xml" "$work/xsec"
  mkdir -p "$home/modules/x-pack-core" "$home/modules/x-pack-security"
  in_lib=$(for j in "$home"/lib/*.jar; do jar_name "$j"; done)
  # x-pack-core: its jars minus what the server's lib/ already has (jar hell otherwise).
  for jar in "$work"/xcore/*.jar; do
    grep -qx "$(jar_name "$jar")" <<< "$in_lib" || cp "$jar" "$home/modules/x-pack-core/"
  done
  in_core=$(for j in "$home"/modules/x-pack-core/*.jar; do jar_name "$j"; done)
  # x-pack-security extends x-pack-core (parent layer): only what neither has. It keeps its own
  # transport-netty4 + netty copies, as in Elastic's distribution (sibling modules are invisible).
  for jar in "$work"/xsec/*.jar; do
    n=$(jar_name "$jar")
    case "$n" in
      # same module as jakarta.activation (which contains the API), and two builds of jcip
      jakarta.activation-api) continue ;;
      jcip-annotations) [ -e "$home"/modules/x-pack-security/jcip-annotations-*.jar ] && continue ;;
    esac
    grep -qx "$n" <<< "$in_lib" && continue
    grep -qx "$n" <<< "$in_core" && continue
    cp "$jar" "$home/modules/x-pack-security/"
  done
  module_files x-pack-core
  module_files x-pack-security
fi

# Our small Java parts, none of which Elastic publishes on Maven Central (see README).
"${JDK_BIN}javac" --release 17 -nowarn -d "$work/classes" -cp "$home/lib/*:$home/modules/transport-netty4/*" \
  $(find launcher/src -name "*.java")
printf 'Agent-Class: org.flock.esnode.EntitlementAgent\nCan-Redefine-Classes: true\nCan-Retransform-Classes: true\n' \
  > "$work/agent.mf"
"${JDK_BIN}jar" --create --file "$home/lib/entitlement-agent/flock-entitlement-agent.jar" --manifest "$work/agent.mf" \
  -C "$work/classes" org/flock/esnode/EntitlementAgent.class
"${JDK_BIN}jar" --create --file "$home/lib/launcher/flock-es-launcher.jar" \
  -C "$work/classes" org/flock/esnode/Launcher.class -C "$work/classes" 'org/flock/esnode/Launcher$NeverEndingInput.class' \
  -C "$work/classes" 'org/flock/esnode/Launcher$MarkerFilter.class'
"${JDK_BIN}jar" --create --file "$home/lib/tools/ansi-console/flock-ansi-console.jar" \
  -C "$work/classes" org/elasticsearch/io/ansi/AnsiConsoleLoader.class
# bin/elasticsearch-keystore (ours, on the server's KeyStoreWrapper, see README).
"${JDK_BIN}jar" --create --file "$home/lib/tools/keystore-cli/flock-keystore-cli.jar" \
  -C "$work/classes" org/flock/esnode/KeystoreCli.class -C "$work/classes" 'org/flock/esnode/KeystoreCli$UserError.class'

# GET / (our re-implementation of Elastic's rest-root module, see README), loaded like any module.
"${JDK_BIN}jar" --create --file "$home/modules/flock-rest-root/flock-rest-root.jar" \
  -C "$work/classes" org/flock/esnode/restroot
cat > "$home/modules/flock-rest-root/plugin-descriptor.properties" <<EOF
description=GET / and HEAD / (stands in for Elastic's rest-root module; not Elastic's code)
version=$ES_VERSION
name=flock-rest-root
classname=org.flock.esnode.restroot.FlockRestRootPlugin
java.version=17
elasticsearch.version=$ES_VERSION
EOF

# The token filters/tokenizer of analysis-common that the .security index needs (ours, see README).
"${JDK_BIN}jar" --create --file "$home/modules/flock-analysis/flock-analysis.jar" \
  -C "$work/classes" org/flock/esnode/analysis
cat > "$home/modules/flock-analysis/plugin-descriptor.properties" <<EOF
description=pattern_capture and unique token filters, uax_url_email tokenizer (stands in for part of Elastic's analysis-common module; not Elastic's code)
version=$ES_VERSION
name=flock-analysis
classname=org.flock.esnode.analysis.FlockAnalysisPlugin
java.version=17
elasticsearch.version=$ES_VERSION
EOF

# Elastic bundles libzstd here (not on Maven Central). On Java 21+ ES's native access layer loads it
# from this path and, without it, disables all native calls (seccomp, rlimit checks). The system
# libzstd1 (a dependency of dpkg, so present on every Debian/Ubuntu) is the same library.
mkdir -p "$home/lib/platform/linux-x64"
ln -s /usr/lib/x86_64-linux-gnu/libzstd.so.1 "$home/lib/platform/linux-x64/libzstd.so"

cp -R dist/bin dist/config "$home/"
rm -f "$home/config/jvm.options.d/.keep"
chmod 0755 "$home"/bin/elasticsearch*

tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$work" \
  -czf "$work/out.tar.gz" "elasticsearch-$ES_VERSION"
mv "$work/out.tar.gz" "$artifact"
echo "built $artifact" >&2
echo "$artifact"
