"""The elasticsearch role's filters: cluster description, bootstrap decision, role diff."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from roles.elasticsearch.filter_plugins import elasticsearch as es

ROLE = Path(__file__).parents[1]

# The role's own defaults file, as vars/main.yml loads it for other hosts.
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
ME = {"name": "node-a", "address": "10.0.0.1", "transport_port": "9300", "roles": ["master"]}


def _node(host, roles=("master", "data")):
    return {"host": host, "name": host, "address": host, "transport_port": 9300, "roles": roles}


# --- cluster_nodes -----------------------------------------------------------------------


def test_this_host_uses_its_resolved_settings():
    nodes = es.cluster_nodes(
        ["a"], {"a": {"elasticsearch_node_name": "ignored"}}, "a", ME, DEFAULTS
    )
    assert nodes == [{**ME, "host": "a", "transport_port": 9300}]


def test_other_hosts_fall_back_to_inventory_then_role_defaults():
    hostvars = {
        "b": {"ansible_host": "10.0.0.2"},
        "c": {"elasticsearch_address": "c.internal", "elasticsearch_transport_port": 9302},
    }
    nodes = es.cluster_nodes(["a", "b", "c"], hostvars, "a", ME, DEFAULTS)
    assert [n["host"] for n in nodes] == ["a", "b", "c"]
    assert nodes[1] == {
        "host": "b",
        "name": "b",
        "address": "10.0.0.2",
        "transport_port": DEFAULTS["elasticsearch_transport_port"],
        "roles": DEFAULTS["elasticsearch_node_roles"],
    }
    assert nodes[2]["address"] == "c.internal"
    assert nodes[2]["transport_port"] == 9302


def test_defaults_file_has_the_constants_other_hosts_need():
    assert isinstance(DEFAULTS["elasticsearch_transport_port"], int)
    assert "master" in DEFAULTS["elasticsearch_node_roles"]


# --- should_bootstrap --------------------------------------------------------------------

THREE = [_node("es1"), _node("es2"), _node("es3")]


def _facts(**pending):
    """hostvars as the filter reads them: each host's pending fact."""
    return {h: {"__elasticsearch_bootstrap_pending": v} for h, v in pending.items()}


ALL_PENDING = _facts(es1=True, es2=True, es3=True)


def test_a_new_cluster_with_every_master_in_the_play_bootstraps():
    assert es.should_bootstrap(THREE, "auto", "multi-node", ["es1", "es2", "es3"], ALL_PENDING)


def test_a_limited_run_never_bootstraps():
    assert not es.should_bootstrap(THREE, "auto", "multi-node", ["es1", "es2"], ALL_PENDING)


def test_a_running_cluster_is_not_bootstrapped_again():
    pending = {**ALL_PENDING, **_facts(es2=False)}
    assert not es.should_bootstrap(THREE, "auto", "multi-node", ["es1", "es2", "es3"], pending)


def test_pending_flags_as_ansible_hands_them_over():
    pending = _facts(es1="True", es2="true", es3=True)
    assert es.should_bootstrap(THREE, "AUTO", "multi-node", ["es1", "es2", "es3"], pending)
    pending = _facts(es1="True", es2="true", es3="False")
    assert not es.should_bootstrap(THREE, "auto", "multi-node", ["es1", "es2", "es3"], pending)


def test_a_data_only_node_outside_the_play_does_not_block():
    nodes = [*THREE, _node("es4", roles=("data",))]
    assert es.should_bootstrap(nodes, "auto", "multi-node", ["es1", "es2", "es3"], ALL_PENDING)


@pytest.mark.parametrize(("mode", "expected"), [(True, True), ("true", True), ("False", False)])
def test_forced_modes(mode, expected):
    assert es.should_bootstrap(THREE, mode, "multi-node", ["es1"], {}) is expected


def test_single_node_never_bootstraps():
    assert not es.should_bootstrap([_node("es1")], True, "single-node", ["es1"], ALL_PENDING)


# --- role_differs ------------------------------------------------------------------------

WRITER = {
    "cluster": [],
    "indices": [
        {"names": ["fleet-results-*"], "privileges": ["create_doc"]},
        {"names": ["fleet-agents"], "privileges": ["read", "write"]},
    ],
}


def _as_es_returns(role):
    """Elasticsearch's answer adds keys of its own to the role and to each entry."""
    return {
        **role,
        "run_as": [],
        "metadata": {},
        "transient_metadata": {"enabled": True},
        "indices": [{**e, "allow_restricted_indices": False} for e in role["indices"]],
    }


def test_a_missing_role_is_written():
    assert es.role_differs(None, WRITER)


def test_the_same_role_with_keys_elasticsearch_adds_is_left_alone():
    assert not es.role_differs(_as_es_returns(WRITER), WRITER)


def test_a_changed_index_pattern_is_written():
    current = _as_es_returns(
        {
            **WRITER,
            "indices": [
                {**WRITER["indices"][0], "names": ["flock-results-*"]},
                WRITER["indices"][1],
            ],
        }
    )
    assert es.role_differs(current, WRITER)


def test_a_missing_or_extra_entry_is_written():
    current = _as_es_returns({**WRITER, "indices": WRITER["indices"][:1]})
    assert es.role_differs(current, WRITER)


def test_a_changed_plain_key_is_written():
    assert es.role_differs(_as_es_returns({**WRITER, "cluster": ["monitor"]}), WRITER)


def test_filters_are_registered_under_the_role_prefix():
    names = set(es.FilterModule().filters())
    assert names == {
        "elasticsearch_cluster_nodes",
        "elasticsearch_should_bootstrap",
        "elasticsearch_role_differs",
        "elasticsearch_version_compare",
        "elasticsearch_installed_version",
        "elasticsearch_archive_dir",
        "elasticsearch_restart_order",
    }


# --- version_compare ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "right", "want"),
    [
        ("8.19.20", "8.19.21", -1),
        ("8.19.21", "8.19.20", 1),
        ("8.19.21", "8.19.21", 0),
        # Numeric per part, not as text.
        ("8.9.0", "8.19.0", -1),
        ("9.0.0", "8.19.21", 1),
        ("8.19", "8.19.0", 0),
        # A pre-release comes before its release.
        ("9.0.0-rc1", "9.0.0", -1),
        ("9.0.0-beta1", "9.0.0-rc1", -1),
    ],
)
def test_version_compare(left, right, want):
    assert es.version_compare(left, right) == want


def test_version_compare_refuses_what_is_not_a_version():
    with pytest.raises(ValueError, match="not an Elasticsearch version"):
        es.version_compare("latest", "8.19.21")


# --- installed_version -------------------------------------------------------------------

HOME = "/usr/share/elasticsearch"


@pytest.mark.parametrize(
    ("link", "want"),
    [
        ({"islnk": True, "lnk_source": f"{HOME}-8.19.20"}, "8.19.20"),
        ({"islnk": True, "lnk_source": f"{HOME}-8.19.21/"}, "8.19.21"),
        # The x-pack tree of a version is that version (not a pre-release "xpack").
        ({"islnk": True, "lnk_source": f"{HOME}-8.19.21-xpack"}, "8.19.21"),
        # A plain directory (installed by hand, or by an older role) says no version.
        ({"islnk": False, "isdir": True}, ""),
        ({"islnk": True, "lnk_source": "/opt/es"}, ""),
        ({"exists": False}, ""),
        (None, ""),
    ],
)
def test_installed_version_archive(link, want):
    assert es.installed_version("archive", HOME, link, None) == want


@pytest.mark.parametrize(
    ("xpack", "want"),
    [
        (True, f"{HOME}-8.19.21-xpack"),
        ("true", f"{HOME}-8.19.21-xpack"),
        (False, f"{HOME}-8.19.21"),
    ],
)
def test_archive_dir_carries_the_flavour(xpack, want):
    assert es.archive_dir(HOME + "/", "8.19.21", xpack) == want
    # Whichever flavour, the tree reads back as its version.
    link = {"islnk": True, "lnk_source": want}
    assert es.installed_version("archive", HOME, link, None) == "8.19.21"


@pytest.mark.parametrize(
    ("dpkg", "want"),
    [
        ("install ok installed|8.19.21", "8.19.21"),
        # The role holds the package: held and installed is installed.
        ("hold ok installed|8.19.20", "8.19.20"),
        ("install ok half-configured|8.19.21", ""),
        ("deinstall ok config-files|8.19.20", ""),
        ("", ""),
        (None, ""),
    ],
)
def test_installed_version_apt(dpkg, want):
    assert es.installed_version("apt", HOME, None, dpkg) == want


# --- restart_order -----------------------------------------------------------------------


def test_restart_order_stopped_nodes_first_else_inventory_order():
    hv = {
        "a": {"__elasticsearch_initially_up": True},
        "b": {"__elasticsearch_initially_up": "False"},
        "c": {},
        "d": {"__elasticsearch_initially_up": False},
    }
    assert es.restart_order(["a", "b", "c", "d"], hv) == ["b", "d", "a", "c"]


def test_restart_order_data_only_then_masters_then_the_elected_master():
    nodes = [
        {"host": "m1", "roles": ["master", "data"]},
        {"host": "m2", "roles": ["master", "data", "ingest"]},
        {"host": "d1", "roles": ["data", "ingest"]},
        {"host": "m3", "roles": ["master"]},
        {"host": "d2", "roles": ["data"]},
    ]
    hosts = ["m1", "m2", "d1", "m3", "d2"]
    assert es.restart_order(hosts, {}, nodes, "m1") == ["d1", "d2", "m2", "m3", "m1"]
    # The elected master unknown (no node answered): masters in inventory order.
    assert es.restart_order(hosts, {}, nodes, "") == ["d1", "d2", "m1", "m2", "m3"]


def test_restart_order_a_stopped_node_goes_first_whatever_its_roles():
    nodes = [
        {"host": "m1", "roles": ["master", "data"]},
        {"host": "m2", "roles": ["master", "data"]},
        {"host": "d1", "roles": ["data"]},
    ]
    hv = {"m2": {"__elasticsearch_initially_up": False}}
    assert es.restart_order(["m1", "m2", "d1"], hv, nodes, "m1") == ["m2", "d1", "m1"]
