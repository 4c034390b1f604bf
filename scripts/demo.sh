#!/usr/bin/env bash
# The demo deployment: the whole Flock server onto local systemd containers standing in
# for servers (inventory/local), deployed by the same site.yml an operator runs.
#   scripts/demo.sh up     install what is needed, create the containers, run site.yml
#   scripts/demo.sh down   remove the containers, the network and the demo's state
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
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
  step "4/6 offline artifacts: Elasticsearch node (Maven Central), Kibana API stand-in"
  FLOCK_ES_ARTIFACT=$(test-infra/elasticsearch-node/build.sh | tail -n1)
  FLOCK_KIBANA_ARTIFACT=$(test-infra/kibana-standin/build.sh | tail -n1)
  export FLOCK_ES_ARTIFACT FLOCK_KIBANA_ARTIFACT
  step "5/6 containers standing in for servers"
  ansible-playbook -i "$inventory" playbooks/local-containers.yml
  step "6/6 ansible-playbook -i $inventory site.yml"
  ansible-playbook -i "$inventory" site.yml
  step "done in $((SECONDS - t0))s"
  print_usage
}

print_usage() {
  local ca=$inventory/.pki/ca.crt  # the pki role's CA on the controller
  cat <<MSG

Flock demo is up (containers: $(docker ps --filter name=flock-demo- --format '{{.Names}}' | sort | tr '\n' ' '))
  Gateway:        https://127.0.0.1:8443
  Kibana:         https://127.0.0.1:5601   (a STAND-IN for Kibana's HTTP API: status and
                  saved-objects import only, no UI; real Kibana can't be fetched here)
  Elasticsearch:  http://127.0.0.1:9200    (real node built from Maven Central jars;
                  no x-pack security, so plain HTTP on loopback only)
  CA to trust:    $repo/$ca

Register a laptop and submit a row:
  token=\$(curl -s --cacert $ca -d username=demo-laptop https://127.0.0.1:8443/register | python3 -c 'import json,sys; print(json.load(sys.stdin)["auth_token"])')
  curl -s --cacert $ca -u demo-laptop:\$token -H 'Content-Type: application/json' \\
       -d '{"host_uuid": "demo-laptop", "other_arbitrary_data": "goes here"}' https://127.0.0.1:8443/submit
  sleep 5; curl -s 'http://127.0.0.1:9200/flock-results-*/_search?q=flock.username:demo-laptop&pretty'   # searchable within the 5 s refresh
(Registering the same username twice is refused; pick another name on the second try.)
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
