"""A rolling upgrade (and a plain rolling restart) of 3- and 2-node clusters with rows flowing.

side_effect.yml ran traffic.py (gateway + writer + health sampler) on the controller around
each converge; these tests compare what the writer was told with what Elasticsearch stored,
and what the sampler saw.
"""

import json
import os
from pathlib import Path

import pytest
import testinfra
import yaml

CLUSTERS = {
    "trio": ["upgrade-trio-1", "upgrade-trio-2", "upgrade-trio-3"],
    "pair": ["upgrade-pair-1", "upgrade-pair-2"],
}
NODES = [n for names in CLUSTERS.values() for n in names]
CLUSTER_OF = {n: c for c, names in CLUSTERS.items() for n in names}
# Each cluster's nodes share one network namespace, one HTTP port each.
HTTP_PORT = {n: 9200 + i for names in CLUSTERS.values() for i, n in enumerate(names)}
# The plain rolling restart runs on the pair only (side_effect.yml).
# upgrade-trio-3 is data-only (molecule.yml): first in the upgrade.
DATA_ONLY = "upgrade-trio-3"
# The trio's interrupted config-change restart (side_effect.yml) was finished on its other
# two nodes; the pair's nodes all restarted in the plain rolling restart.
UNTOUCHED_BY_RESUME = {DATA_ONLY}
RUNS = [("upgrade", "trio"), ("upgrade", "pair"), ("restart", "pair")]

OLD = os.environ["FLOCK_ES_VERSION_PREVIOUS"]
NEW = yaml.safe_load(
    (Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "roles/flock/defaults/main.yml").read_text()
)["flock_elastic_version"]
TRAFFIC = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "traffic"

testinfra_hosts = [f"ansible://{NODES[0]}"]


def node(name):
    return testinfra.get_host(
        f"ansible://{name}", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"]
    )


def es(name, path, method="GET", body=None):
    """A request to one node, from inside its own container (loopback)."""
    cmd = ["curl", "-sS", "--fail-with-body", "--max-time", "70", "-X", method]
    if body is not None:
        cmd += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    cmd.append(f"http://127.0.0.1:{HTTP_PORT[name]}{path}")
    return json.loads(node(name).check_output(" ".join(f"'{c}'" for c in cmd)))


def node_log(name):
    """The node's whole log: the files log4j rolled (at midnight, and by size), oldest
    first, then the current one. A run that crosses midnight has its first starts in a
    rolled file."""
    base = f"/var/log/elasticsearch/upgrade-{CLUSTER_OF[name]}"
    return node(name).check_output(
        f"for f in $(ls {base}-*.log.gz 2>/dev/null | sort -V); do zcat $f; done; cat {base}.log"
    )


def traffic(phase, cluster):
    return json.loads((TRAFFIC / f"{phase}-{cluster}.json").read_text())


def record(name, when):
    return json.loads(node(name).file(f"/root/upgrade-{when}.json").content_string)


@pytest.mark.parametrize("name", NODES)
def test_every_node_runs_the_new_version(name):
    assert es(name, "/")["version"]["number"] == NEW
    assert (
        node(name).file("/usr/share/elasticsearch").linked_to == f"/usr/share/elasticsearch-{NEW}"
    )


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_cluster_whole_and_green(cluster):
    first = CLUSTERS[cluster][0]
    n = len(CLUSTERS[cluster])
    health = es(first, f"/_cluster/health?wait_for_status=green&wait_for_nodes={n}&timeout=60s")
    assert health["number_of_nodes"] == n
    assert health["status"] == "green"
    versions = {
        v["version"]
        for v in es(first, "/_nodes/_all/none?filter_path=nodes.*.version")["nodes"].values()
    }
    assert versions == {NEW}


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_nothing_left_from_the_procedure(cluster):
    """Allocation re-enabled and no vote exclusion left (they would pin the cluster)."""
    first = CLUSTERS[cluster][0]
    settings = es(first, "/_cluster/settings?flat_settings=true")
    assert "cluster.routing.allocation.enable" not in settings["persistent"]
    state = es(first, "/_cluster/state/metadata?filter_path=metadata.cluster_coordination")
    assert state["metadata"]["cluster_coordination"]["voting_config_exclusions"] == []


@pytest.mark.parametrize("name", NODES)
def test_one_start_per_version(name):
    """Started once at the old version, once by the upgrade (the attribute change of the
    same run rode along), on the pair once more by the plain restart and on the trio's two
    interrupted nodes once more by the run that finished their restart: never twice for
    one upgrade."""
    starts = [line for line in node_log(name).splitlines() if "version[" in line and "pid[" in line]
    versions = [line.split("version[", 1)[1].split("]", 1)[0] for line in starts]
    assert versions == ([OLD, NEW] if name in UNTOUCHED_BY_RESUME else [OLD, NEW, NEW])


def restart_order(when):
    """Each cluster's nodes in the order their JVMs started in the converge before the
    record ``when``."""
    return {
        cluster: sorted(names, key=lambda n: record(n, when)["jvm_start_ms"])
        for cluster, names in CLUSTERS.items()
    }


def test_upgrade_order_data_only_first_elected_master_last():
    """Elastic's order: nodes that are not master-eligible first, master-eligible ones
    after, the elected master last of all (the pair's upgrade-pair-2 was found stopped
    and goes first whatever its roles)."""
    order = restart_order("after-upgrade")
    trio_master = record("upgrade-trio-1", "master-before-upgrade")["master"]
    pair_master = record("upgrade-pair-1", "master-before-upgrade")["master"]
    assert order["trio"][0] == DATA_ONLY
    assert order["trio"][-1] == trio_master
    assert order["pair"] == ["upgrade-pair-2", "upgrade-pair-1"] == ["upgrade-pair-2", pair_master]


def test_plain_restart_elected_master_last():
    master = record("upgrade-pair-1", "master-before-restart")["master"]
    assert restart_order("before-downgrade")["pair"][-1] == master


def test_interrupted_restart_finished():
    """The run after an interrupted config-change restart started upgrade-trio-2 (left
    stopped), restarted upgrade-trio-1 (its restart noted as pending) and left
    upgrade-trio-3 alone; no note stays behind."""
    for name in CLUSTERS["trio"]:
        upgraded, resumed = record(name, "after-upgrade"), record(name, "after-resume")
        if name in UNTOUCHED_BY_RESUME:
            assert resumed["pid"] == upgraded["pid"]
        else:
            assert resumed["pid"] != upgraded["pid"]
        note = record(name, "after-resume-note")
        assert note == {"pending_note": False}


@pytest.mark.parametrize("name", NODES)
def test_config_changes_applied(name):
    before, upgraded, restarted = (
        record(name, w) for w in ("before", "after-upgrade", "before-downgrade")
    )
    assert "flock_upgrade" not in before["attributes"]
    assert upgraded["attributes"]["flock_upgrade"] == "rode-along"
    assert "flock_restart" not in upgraded["attributes"]
    if CLUSTER_OF[name] == "pair":
        assert restarted["attributes"]["flock_restart"] == "weekly"
        assert len({before["pid"], upgraded["pid"], restarted["pid"]}) == 3
    else:
        assert "flock_restart" not in restarted["attributes"]
        assert restarted["attributes"]["flock_upgrade"] == "rode-along"
        assert before["pid"] != upgraded["pid"]
        assert (upgraded["pid"] == restarted["pid"]) == (name in UNTOUCHED_BY_RESUME)


def stored_seqs(name, agent):
    """Every stored row's number, read from the documents themselves (the writer's own
    field is kept in _source, whether or not the index maps it)."""
    es(name, "/flock-results-*/_refresh", "POST")
    body = {
        "size": 5000,
        "query": {"term": {"flock.username": agent}},
        "_source": ["seq", "data.seq"],
    }
    page = es(name, "/flock-results-*/_search?scroll=2m", "POST", body)
    seqs = []
    while page["hits"]["hits"]:
        for hit in page["hits"]["hits"]:
            src = hit["_source"]
            seqs.append(src["data"]["seq"] if "data" in src else src["seq"])
        page = es(
            name, "/_search/scroll", "POST", {"scroll": "2m", "scroll_id": page["_scroll_id"]}
        )
    return seqs


@pytest.mark.parametrize(("phase", "cluster"), RUNS)
def test_rows_acknowledged_are_stored_once(phase, cluster):
    run = traffic(phase, cluster)
    assert run["refused"] == []
    assert run["acknowledged"] > 0
    seqs = stored_seqs(CLUSTERS[cluster][0], run["agent"])
    # Every row the writer was told was stored is there, once; nothing else is.
    assert len(seqs) == len(set(seqs)), "duplicates stored"
    assert sorted(seqs) == list(range(run["acknowledged"]))
    assert run["acknowledged"] == run["sent"]


@pytest.mark.parametrize(("phase", "cluster"), RUNS)
def test_cluster_never_red(phase, cluster):
    run = traffic(phase, cluster)
    samples = run["health_samples"]
    # Twice a second for the whole run (the run takes minutes).
    assert len(samples) > 60
    assert samples[0][0] - run["started"] < 5 and run["stopped"] - samples[-1][0] < 5
    bad = [s for s in samples if s[1] not in ("green", "yellow")]
    assert bad == []


@pytest.mark.parametrize(("phase", "cluster"), RUNS)
def test_one_node_down_at_a_time(phase, cluster):
    """Elastic's order: the sampler saw each cluster one node short while a node was
    stopped, and never two short (samples without a master carry no count)."""
    counts = [s[2] for s in traffic(phase, cluster)["health_samples"] if s[2] is not None]
    assert min(counts) == len(CLUSTERS[cluster]) - 1


def test_downgrade_refused_and_nothing_changed():
    out = json.loads((TRAFFIC / "downgrade.json").read_text())
    assert out["rc"] != 0
    # The failed task's message is on stderr (Molecule's ansible.cfg sets
    # display_failed_stderr) and wrapped by the callback: both streams, whitespace collapsed.
    said = " ".join((out["stdout"] + "\n" + out["stderr"]).split())
    assert "Refusing to downgrade Elasticsearch" in said
    assert f"{NEW} is installed and elasticsearch_version={OLD}" in said
    for name in NODES:
        assert (
            record(name, "before-downgrade")["pid"]
            == es(name, "/_nodes/_local/process")["nodes"].popitem()[1]["process"]["id"]
        )
