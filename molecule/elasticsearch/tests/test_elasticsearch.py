"""One Elasticsearch node installed by roles/elasticsearch (archive install, offline node)."""

import json

import pytest
import yaml

URL = "http://elasticsearch-node1:9200"


def es_get(host, path):
    """GET path on the node from inside its container; parsed JSON."""
    out = host.check_output("curl -sS --fail-with-body --max-time 10 %s%s", URL, path)
    return json.loads(out)


@pytest.fixture(scope="module")
def inventory(host):
    return host.ansible.get_variables()


def test_service_active_under_systemd(host):
    service = host.service("elasticsearch")
    assert service.is_running
    assert service.is_enabled
    assert host.check_output("systemctl show --value -p User elasticsearch") == "elasticsearch"
    main_pid = host.check_output("systemctl show --value -p MainPID elasticsearch")
    assert host.check_output("ps -o user= -p %s", main_pid) == "elasticsearch"
    # ES_PATH_CONF from the unit: the running JVM reads /etc/elasticsearch.
    cmdline = host.check_output("tr '\\0' ' ' < /proc/%s/cmdline", main_pid)
    assert "-Des.path.conf=/etc/elasticsearch" in cmdline


def test_unit_limits(host):
    # The unit asks for 65535 open files; the process gets at most the container's hard
    # limit (20000 on our build machines, where nothing may raise it).
    assert host.check_output("systemctl show --value -p LimitNOFILE elasticsearch") == "65535"
    hard = int(host.check_output("sh -c 'ulimit -Hn'"))
    stats = es_get(host, "/_nodes/_local/stats/process")
    node = next(iter(stats["nodes"].values()))
    assert node["process"]["max_file_descriptors"] == min(65535, hard)


def test_answers_with_inventory_cluster_name(host, inventory):
    root = es_get(host, "/")
    assert root["cluster_name"] == inventory["elasticsearch_cluster_name"] == "molecule-single"
    assert root["name"] == "elasticsearch-node1"
    assert root["version"]["number"] == "8.19.21"
    health = es_get(host, "/_cluster/health")
    assert health["number_of_nodes"] == 1
    assert health["status"] in ("green", "yellow")


def test_layout_like_the_deb(host):
    home = host.file("/usr/share/elasticsearch")
    assert home.is_symlink
    assert home.linked_to == "/usr/share/elasticsearch-8.19.21"
    conf = host.file("/etc/elasticsearch")
    assert (conf.user, conf.group, conf.mode) == ("root", "elasticsearch", 0o2750)
    for path in (
        "/etc/elasticsearch/elasticsearch.yml",
        "/etc/elasticsearch/jvm.options.d/heap.options",
    ):
        f = host.file(path)
        assert (f.user, f.group, f.mode) == ("root", "elasticsearch", 0o660)
    logs = host.file("/var/log/elasticsearch")
    assert (logs.user, logs.group, logs.mode) == ("elasticsearch", "elasticsearch", 0o2750)
    assert host.file("/var/log/elasticsearch/molecule-single.log").exists


def test_data_under_configured_path(host, inventory):
    data_dir = inventory["elasticsearch_data_dir"]
    assert data_dir == "/srv/elasticsearch/data"
    d = host.file(data_dir)
    assert (d.user, d.group, d.mode) == ("elasticsearch", "elasticsearch", 0o2750)
    # The node's persisted cluster state lives there, and ES reports that path as its data path.
    assert host.file(data_dir + "/_state").is_directory
    assert host.check_output("find %s/_state -type f -name 'segments_*' | wc -l", data_dir) != "0"
    fs = es_get(host, "/_nodes/_local/stats/fs")
    paths = [p["path"] for p in next(iter(fs["nodes"].values()))["fs"]["data"]]
    assert paths == [data_dir]
    assert not host.file("/usr/share/elasticsearch/data").exists


def test_config_rendered_from_variables(host):
    cfg = host.file("/etc/elasticsearch/elasticsearch.yml").content_string
    settings = yaml.safe_load(cfg)
    assert settings["cluster.name"] == "molecule-single"
    assert settings["node.name"] == "elasticsearch-node1"
    assert settings["node.roles"] == ["master", "data", "ingest"]
    assert settings["path.data"] == "/srv/elasticsearch/data"
    # One host in the group: single-node discovery, nothing to bootstrap.
    assert settings["discovery.type"] == "single-node"
    assert "discovery.seed_hosts" not in settings
    assert "cluster.initial_master_nodes" not in settings
    # Bound beyond loopback (the container's address), so other hosts can reach it.
    assert "_local_" in settings["network.host"]
    assert len(settings["network.host"]) == 2
    # The offline node has no x-pack: no security settings at all.
    assert not [k for k in settings if k.startswith("xpack.")]


def test_heap_from_variable(host):
    heap = host.file("/etc/elasticsearch/jvm.options.d/heap.options").content_string
    assert "-Xms512m" in heap and "-Xmx512m" in heap
    jvm = es_get(host, "/_nodes/_local/jvm")
    node = next(iter(jvm["nodes"].values()))
    assert node["jvm"]["mem"]["heap_max_in_bytes"] == 512 * 1024 * 1024


def test_config_change_restarted_the_node(host):
    """side_effect.yml changed a setting; the handler must have restarted the node."""
    before = json.loads(host.file("/root/molecule-node-before.json").content_string)
    after = json.loads(host.file("/root/molecule-node-after.json").content_string)
    assert "flock_marker" not in before["attributes"]
    # The new setting is live, so the JVM re-read the config: a new process, a new unit run.
    assert after["attributes"].get("flock_marker") == "side-effect"
    assert after["pid"] != before["pid"]
    assert after["invocation_id"] != before["invocation_id"]
    assert after["jvm_start_ms"] > before["jvm_start_ms"]
    # And it is still the node that runs now.
    now = next(iter(es_get(host, "/_nodes/_local")["nodes"].values()))
    assert now["attributes"]["flock_marker"] == "side-effect"
