"""Three nodes installed by roles/elasticsearch, with x-pack security (TLS from the pki
role, passwords on the controller), form one cluster and restart one at a time."""

import itertools
import json
import os
import shlex
from pathlib import Path

import pytest
import testinfra
import yaml

NODES = ["elasticsearch-cluster-1", "elasticsearch-cluster-2", "elasticsearch-cluster-3"]
# The nodes share one network namespace and talk over loopback (see ../create.yml).
HTTP_PORT = {name: 9200 + i for i, name in enumerate(NODES)}
TRANSPORT_PORT = {name: 9300 + i for i, name in enumerate(NODES)}
# Cross-node checks run once, from the first node; each node is reached through Ansible.
testinfra_hosts = [f"ansible://{NODES[0]}"]
CA = "/etc/flock/pki/ca.crt"
CREDENTIALS = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "credentials"


def node(name):
    return testinfra.get_host(
        f"ansible://{name}", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"]
    )


def es_get(host, path, name=NODES[0]):
    """GET over HTTPS as elastic (password through curl's config on stdin)."""
    password = (CREDENTIALS / "elastic.password").read_text().strip()
    cfg = shlex.quote(f'user = "elastic:{password}"\n')
    url = shlex.quote(f"https://127.0.0.1:{HTTP_PORT[name]}{path}")
    out = host.check_output(
        f"printf %s {cfg} | curl -sS --fail-with-body --max-time 70 --cacert {CA} -K - {url}"
    )
    return json.loads(out)


@pytest.mark.parametrize("name", NODES)
def test_service_active(name):
    service = node(name).service("elasticsearch")
    assert service.is_running
    assert service.is_enabled


def test_one_green_cluster_of_three(host):
    health = es_get(host, "/_cluster/health?wait_for_status=green&wait_for_nodes=3&timeout=60s")
    assert health["cluster_name"] == "molecule-cluster"
    assert health["number_of_nodes"] == 3
    assert health["status"] == "green"
    names = sorted(n["name"] for n in es_get(host, "/_nodes/_all/none")["nodes"].values())
    assert names == NODES


@pytest.mark.parametrize("name", NODES)
def test_every_node_sees_the_same_cluster(host, name):
    root = es_get(host, "/", name)
    assert root["cluster_name"] == "molecule-cluster"
    assert root["cluster_uuid"] == es_get(host, "/")["cluster_uuid"] != "_na_"


@pytest.mark.parametrize("name", NODES)
def test_config_after_formation(name):
    settings = yaml.safe_load(
        node(name).file("/etc/elasticsearch/elasticsearch.yml").content_string
    )
    assert settings["node.name"] == name
    assert settings["http.port"] == HTTP_PORT[name]
    assert settings["transport.port"] == TRANSPORT_PORT[name]
    # Every node of the inventory group, with that node's own transport port.
    assert settings["discovery.seed_hosts"] == [f"127.0.0.1:{TRANSPORT_PORT[n]}" for n in NODES]
    # Rendered for the first start only; gone once the cluster formed.
    assert "cluster.initial_master_nodes" not in settings


def test_data_survived_rolling_restart(host):
    count = es_get(host, "/molecule-rolling/_count")
    assert count["count"] == 100
    index_health = es_get(host, "/_cluster/health/molecule-rolling")
    assert index_health["status"] == "green"


def records():
    out = {}
    for name in NODES:
        h = node(name)
        out[name] = {
            when: json.loads(h.file(f"/root/molecule-node-{when}.json").content_string)
            for when in ("before", "after")
        }
    return out


def test_config_change_restarted_every_node():
    for name, rec in records().items():
        assert "flock_marker" not in rec["before"]["attributes"], name
        assert rec["after"]["attributes"].get("flock_marker") == "side-effect", name
        assert rec["after"]["invocation_id"] != rec["before"]["invocation_id"], name
        assert rec["after"]["pid"] != rec["before"]["pid"], name


def test_nodes_restarted_one_at_a_time():
    """Each node was stopped only after the previous one was running again.

    Ordered by the moment their unit left "active" (stop requested), node N+1's stop comes
    after node N's new process became active. A handler restarting all nodes together stops
    them within the same instant, before any of them is running again, and fails this.
    """
    runs = sorted(
        (rec["after"]["active_exit_us"], rec["after"]["active_enter_us"], name)
        for name, rec in records().items()
    )
    for (_, enter_prev, prev), (exit_next, _, nxt) in itertools.pairwise(runs):
        assert exit_next > enter_prev, f"{nxt} was stopped before {prev} was running again"
