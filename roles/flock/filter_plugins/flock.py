"""Filters of the flock role: how the tiers find the Elasticsearch cluster."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# Elasticsearch's own default; a node that listens elsewhere sets elasticsearch_http_port.
DEFAULT_HTTP_PORT = 9200


def node_urls(
    hosts: Iterable[str],
    hostvars: Mapping[str, Mapping[str, Any]],
    scheme: str = "https",
    default_port: int = DEFAULT_HTTP_PORT,
) -> list[str]:
    """The HTTP URL of each cluster member, in inventory order.

    A member is reached at its ``elasticsearch_address`` (the name in its certificate),
    else its ``ansible_host``, else its inventory name; on its ``elasticsearch_http_port``,
    else the default. Role defaults are invisible through hostvars, which is why the
    fallbacks are spelled out here.
    """
    urls = []
    for host in hosts:
        hv = hostvars.get(host, {})
        address = hv.get("elasticsearch_address") or hv.get("ansible_host") or host
        port = int(hv.get("elasticsearch_http_port") or default_port)
        if ":" in str(address) and not str(address).startswith("["):
            address = f"[{address}]"  # an IPv6 literal
        urls.append(f"{scheme}://{address}:{port}")
    return urls


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"flock_node_urls": node_urls}
