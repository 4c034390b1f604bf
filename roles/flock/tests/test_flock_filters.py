"""The flock role's filters, as the inventory hands them data."""

from __future__ import annotations

from roles.flock.filter_plugins import flock


def test_urls_follow_the_inventory_order_and_names():
    hostvars = {"es1": {}, "es2": {}}
    assert flock.node_urls(["es2", "es1"], hostvars) == [
        "https://es2:9200",
        "https://es1:9200",
    ]


def test_address_prefers_elasticsearch_address_then_ansible_host():
    hostvars = {
        "a": {"elasticsearch_address": "a.internal", "ansible_host": "192.0.2.1"},
        "b": {"ansible_host": "192.0.2.2"},
    }
    assert flock.node_urls(["a", "b"], hostvars, "http") == [
        "http://a.internal:9200",
        "http://192.0.2.2:9200",
    ]


def test_a_node_on_its_own_port():
    hostvars = {"n1": {"elasticsearch_http_port": 9201}, "n2": {"elasticsearch_http_port": "9202"}}
    assert flock.node_urls(["n1", "n2"], hostvars) == ["https://n1:9201", "https://n2:9202"]


def test_ipv6_literal_is_bracketed():
    assert flock.node_urls(["x"], {"x": {"ansible_host": "2001:db8::1"}}) == [
        "https://[2001:db8::1]:9200"
    ]


def test_host_missing_from_hostvars_uses_its_name():
    assert flock.node_urls(["es9"], {}) == ["https://es9:9200"]


def test_filter_is_registered_under_its_role_prefix():
    assert flock.FilterModule().filters()["flock_node_urls"] is flock.node_urls
