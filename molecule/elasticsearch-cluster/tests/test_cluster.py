"""Three nodes installed by roles/elasticsearch, with x-pack security (TLS from the pki
role, passwords on the controller), form one cluster, each bound to and published on its
own address, restart one at a time, and take a new CA and node name without a restart."""

import itertools
import json
import os
import shlex
from pathlib import Path

import pytest
import testinfra
import yaml

NODES = ["elasticsearch-cluster-1", "elasticsearch-cluster-2", "elasticsearch-cluster-3"]
# The nodes share one network namespace, each on its own loopback address with the
# standard ports (see ../molecule.yml).
ADDRESS = {name: f"127.0.0.{i}" for i, name in enumerate(NODES, start=1)}
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
    url = shlex.quote(f"https://{ADDRESS[name]}:9200{path}")
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
    assert settings["http.port"] == 9200
    assert settings["transport.port"] == 9300
    assert settings["network.host"] == ADDRESS[name]
    assert settings["network.publish_host"] == ADDRESS[name]
    # Every node of the inventory group, at that node's own address.
    assert settings["discovery.seed_hosts"] == [f"{ADDRESS[n]}:9300" for n in NODES]
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


def test_each_node_publishes_its_own_address(host):
    """What the other nodes and clients are told: the inventory's address, for HTTP and
    transport, and the node is bound there and nowhere else."""
    nodes = es_get(host, "/_nodes/_all/http,transport")["nodes"].values()
    seen = {n["name"]: n for n in nodes}
    assert sorted(seen) == NODES
    for name, info in seen.items():
        address = ADDRESS[name]
        assert info["http"]["publish_address"] == f"{address}:9200", name
        assert info["transport"]["publish_address"] == f"{address}:9300", name
        assert info["http"]["bound_address"] == [f"{address}:9200"], name
        assert info["transport"]["bound_address"] == [f"{address}:9300"], name


def test_nodes_listen_on_their_addresses_only():
    """What listens on 9200 and 9300 is each node's own address, and no wildcard. The
    nodes share one network namespace here, so ss in any of them lists all three; which
    process holds which socket it cannot say (the container's root may not read the
    elasticsearch user's descriptors), so each node's own binding comes from _nodes
    (test_each_node_publishes_its_own_address)."""
    out = node(NODES[0]).check_output("ss -Hltn")
    listening = set()
    for line in out.splitlines():
        addr, _, port = line.split()[3].rpartition(":")
        if int(port) in (9200, 9300):
            listening.add((addr.strip("[]"), int(port)))
    assert listening == {(ADDRESS[n], p) for n in NODES for p in (9200, 9300)}


def test_address_and_name_refused_before_any_change():
    refusals = json.loads(node(NODES[2]).file("/root/molecule-refusals.json").content_string)
    assert (
        "elasticsearch-cluster-3: elasticsearch_address=192.0.2.10 cannot be bound"
        in (refusals["address"])
    )
    assert "which this host does not have" in refusals["address"]
    assert (
        "pki: host elasticsearch-cluster-3: 'es_1' cannot be a certificate DNS name"
        in (refusals["name"])
    )


def test_new_ca_and_node_name_trusted_without_a_restart(host):
    """A CA bundle and a new name in the transport trust file: every node refused the new
    node's certificate before and accepts it after, with the same JVM, and stays green."""
    handshakes = json.loads(host.file("/root/molecule-trust-handshakes.json").content_string)
    assert all(h.startswith("refused") for h in handshakes["before"]), handshakes
    assert handshakes["after"] == ["ok"] * len(NODES), handshakes
    for name in NODES:
        h = node(name)
        before, after = (
            json.loads(h.file(f"/root/molecule-node-{when}-trust.json").content_string)
            for when in ("before", "after")
        )
        assert after["pid"] == before["pid"], name
        assert after["invocation_id"] == before["invocation_id"], name
        assert (
            h.file("/etc/elasticsearch/certs/ca.crt").content_string.count("BEGIN CERTIFICATE") == 2
        )
        trust = yaml.safe_load(
            h.file("/etc/elasticsearch/certs/transport-trust.yml").content_string
        )
        assert "elasticsearch-cluster-4" in trust["trust.subject_name"]
    health = es_get(host, "/_cluster/health?wait_for_status=green&timeout=60s")
    assert health["status"] == "green"
