#!/usr/bin/env bash
# The demo deployment: the whole Flock server onto local systemd containers standing in
# for servers (inventory/local), deployed by the same site.yml an operator runs.
#   scripts/demo.sh up     install what is needed, create the containers, run site.yml
#   scripts/demo.sh down   remove the containers, the network and the demo's state
#   ELASTIC=packages scripts/demo.sh up   Elastic's real packages (Elasticsearch and Kibana
#                          debs from Elastic's APT repository, which the machine must reach)
#                          instead of the offline node and the Kibana stand-in
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/cargo-path.sh
source "$repo/scripts/cargo-path.sh"
cd "$repo"
inventory=inventory/local
export PATH="$repo/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$repo/ansible.cfg"

step() { echo; echo "=== [$(date -u +%H:%M:%S)] $*"; }

up() {
  local t0=$SECONDS
  step "1/6 controller tools (.venv)"
  scripts/bootstrap.sh
  step "2/6 docker engine"
  scripts/ensure-docker.sh
  step "3/6 base image (debootstrap; first run only, a few minutes)"
  FLOCK_BASE_IMAGE=$(test-infra/images/build.sh | tail -n1)
  export FLOCK_BASE_IMAGE
  local extra=()
  case ${ELASTIC:-offline} in
    packages)
      step "4/6 Elastic's packages: installed from Elastic's APT repository by the roles"
      extra=(-e "@$inventory/elastic-packages.yml") ;;
    offline)
      step "4/6 offline artifacts: Elasticsearch node with x-pack security (Maven Central), Kibana API stand-in"
      FLOCK_ES_ARTIFACT=$(ES_FLAVOUR=security test-infra/elasticsearch-node/build.sh | tail -n1)
      FLOCK_KIBANA_ARTIFACT=$(test-infra/kibana-standin/build.sh | tail -n1)
      export FLOCK_ES_ARTIFACT FLOCK_KIBANA_ARTIFACT ;;
    *) echo "ELASTIC must be offline or packages, not ${ELASTIC}" >&2; exit 2 ;;
  esac
  step "5/6 containers standing in for servers"
  ansible-playbook -i "$inventory" playbooks/local-containers.yml
  step "6/6 ansible-playbook -i $inventory site.yml ${extra[*]}"
  ansible-playbook -i "$inventory" site.yml "${extra[@]}"
  step "done in $((SECONDS - t0))s"
  print_usage
}

print_usage() {
  local ca=$inventory/.pki/ca.crt  # the pki role's CA on the controller
  local viewer=$inventory/.credentials/elasticsearch/flock/flock_viewer.password
  cat <<MSG

Flock demo is up (containers: $(docker ps --filter name=flock-demo- --format '{{.Names}}' | sort | tr '\n' ' '))
  Gateway:        https://127.0.0.1:8443
  Kibana:         https://127.0.0.1:5601   (offline: a STAND-IN for Kibana's HTTP API, status,
                  saved-objects import and role API only, no UI; ELASTIC=packages: Kibana)
  Elasticsearch:  https://127.0.0.1:9200   (offline: a real node built from Maven Central jars
                  with Elastic's x-pack security: TLS, passwords, Flock's roles and users)
  CA to trust:    $repo/$ca

Register a laptop and submit a row:
  token=\$(curl -s --cacert $ca -d username=demo-laptop https://127.0.0.1:8443/register | python3 -c 'import json,sys; print(json.load(sys.stdin)["auth_token"])')
  curl -s --cacert $ca -u demo-laptop:\$token -H 'Content-Type: application/json' \\
       -d '{"host_uuid": "demo-laptop", "other_arbitrary_data": "goes here"}' https://127.0.0.1:8443/submit
(Registering the same username twice is refused; pick another name on the second try.)

Flock agent (registration is open, as in inventory/example: gateway_agent_registration):
  server URL https://<this machine>:8443 (the certificate names the gateway container,
  localhost and 127.0.0.1). The agent trusts only its own CA bundle, not the keychain:
  on macOS, as root, give its launchd job a bundle of the system roots plus this CA
  (the agent's installer rewrites the job on each upgrade: do it again then):
    mkdir -p /Library/Flock; security find-certificate -a -p /System/Library/Keychains/SystemRootCertificates.keychain > /Library/Flock/ca-bundle.pem
    cat ca.crt >> /Library/Flock/ca-bundle.pem   # $repo/$ca, copied to the laptop
    plutil -insert EnvironmentVariables -json '{"REQUESTS_CA_BUNDLE":"/Library/Flock/ca-bundle.pem"}' /Library/LaunchDaemons/media.firstlook.flock-agentd.plist
    launchctl unload /Library/LaunchDaemons/media.firstlook.flock-agentd.plist; launchctl load /Library/LaunchDaemons/media.firstlook.flock-agentd.plist
  Production: a publicly trusted certificate (gateway_tls_cert_file) needs none of this.
  More: README.md, "Agents".

Read the rows as the dashboards' read-only user (flock_viewer; searchable within the 5 s
refresh; its password stays in a file on this machine):
  sleep 5; curl -s --cacert $ca -u "flock_viewer:\$(cat $viewer)" 'https://127.0.0.1:9200/flock-results-*/_search?q=flock.username:demo-laptop&pretty'
The same user gets 403 on the agent registry (flock-agents). The gateway's own user
(flock_gateway) can only write: 403 on searching a named index; a wildcard search
answers with no hits (Elasticsearch expands it to the indices the user may read: none).
MSG
}

down() {
  step "removing the demo containers, network, CA and generated credentials"
  ansible-playbook -i "$inventory" playbooks/local-containers.yml -e flock_demo_state=absent
  rm -rf "$inventory/.pki" "$inventory/.credentials"
}

case ${1:-up} in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
