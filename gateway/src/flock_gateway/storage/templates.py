"""Index templates shipped as JSON files (bodies of ``PUT _index_template/<name>``).

``setup-storage`` installs them idempotently: each installed template carries the SHA-256
of its body in ``_meta.flock_sha256``; a template whose hash matches is left alone, so a
re-run reports "unchanged" and Ansible can tell when something changed.

The fields the gateway itself writes into every daily index (``@timestamp`` and the
``flock`` object) are mapped once, in ``index_templates/mappings/gateway-fields.json``,
and put into each daily kind's template as it is loaded.

The columns of result rows (``data.columns``) and their decorations (``data.decorations``)
are mapped in no template file: each template that holds them gets them as it is loaded,
from the reviewed schema (:func:`..schema.column_mappings`), so the mapping cannot drift
from what the clients' queries return.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from elasticsearch import BadRequestError, Elasticsearch, NotFoundError

from ..fields import CLIENT, GATEWAY
from ..indices import DAILY_KINDS, IndexNames
from ..schema import column_mappings, decoration_mappings
from .errors import translate_errors

_DAILY_TEMPLATES = {f"flock-{kind}" for kind in DAILY_KINDS}
# The current-state index's template (see state_template): the daily templates' gateway
# fields and members of its own, and the results template's data.* mapping as loaded.
# setup-storage creates that index and the registry, the two not made by their first
# write (the gateway's user may write documents there, never create indices).
_STATE_TEMPLATE = "flock-state"
_RESULTS_TEMPLATE = "flock-results"


@dataclass(frozen=True)
class Template:
    name: str
    body: dict[str, Any]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(
            json.dumps(self.body, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()


def load_templates(names: IndexNames | None = None) -> list[Template]:
    """The packaged templates, renamed for ``names.prefix``."""
    names = names or IndexNames()
    out = []
    folder = resources.files("flock_gateway").joinpath("index_templates")
    gateway_fields = folder.joinpath("mappings", "gateway-fields.json").read_text(encoding="utf-8")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        body = json.loads(entry.read_text(encoding="utf-8"))
        name = entry.name[: -len(".json")]
        _add_schema_fields(entry.name, body)
        if name in _DAILY_TEMPLATES:
            props = body["template"]["mappings"]["properties"]
            shared = json.loads(gateway_fields)
            if set(shared) & set(props):
                raise ValueError(f"{entry.name} maps {sorted(set(shared) & set(props))} itself")
            body["template"]["mappings"]["properties"] = {**shared, **props}
        body["index_patterns"] = [names.prefixed(p) for p in body["index_patterns"]]
        out.append(Template(name=names.prefixed(name), body=body))
    state_template(out, names, json.loads(gateway_fields))
    return out


def _add_schema_fields(file: str, body: dict[str, Any]) -> None:
    data = body.get("template", {}).get("mappings", {}).get("properties", {}).get("data", {})
    fields = data.get("properties", {})
    for key, generated in (("columns", column_mappings), ("decorations", decoration_mappings)):
        if key not in fields:
            continue
        if fields[key].get("properties"):
            raise ValueError(
                f"{file} maps data.{key} itself; they come from data/query_columns.json"
            )
        fields[key]["properties"] = generated()


def _installed_hash(client: Elasticsearch, name: str) -> str | None:
    try:
        resp = client.indices.get_index_template(name=name)
    except NotFoundError:
        return None
    for entry in resp.get("index_templates", []):
        if entry.get("name") == name:
            meta = entry.get("index_template", {}).get("_meta") or {}
            return str(meta.get("flock_sha256")) if meta.get("flock_sha256") else ""
    return None


@translate_errors
def install_templates(client: Elasticsearch, names: IndexNames) -> dict[str, str]:
    """Install or upgrade every template; returns name -> created|updated|unchanged."""
    report: dict[str, str] = {}
    for tpl in load_templates(names):
        current = _installed_hash(client, tpl.name)
        if current == tpl.sha256:
            report[tpl.name] = "unchanged"
            continue
        body = copy.deepcopy(tpl.body)
        meta = dict(body.pop("_meta", {}))
        meta["flock_sha256"] = tpl.sha256
        client.indices.put_index_template(
            name=tpl.name,
            index_patterns=body["index_patterns"],
            template=body.get("template"),
            priority=body.get("priority"),
            meta=meta,
        )
        report[tpl.name] = "created" if current is None else "updated"
    return report


@translate_errors
def ensure_registry_index(client: Elasticsearch, names: IndexNames) -> str:
    """Create the agent registry index (its template gives the mapping), or add the fields
    a newer template has to the existing index ("updated")."""
    if client.indices.exists(index=names.agents):
        return _add_registry_fields(client, names)
    return _create_index(client, names.agents)


def _create_index(client: Elasticsearch, name: str) -> str:
    """Create an index its template maps: "created", or "unchanged" when another process
    created it first."""
    try:
        client.indices.create(index=name)
    except BadRequestError as exc:
        if "resource_already_exists_exception" in str(exc):
            return "unchanged"
        raise
    return "created"


def state_template(templates: list[Template], names: IndexNames, shared: dict[str, Any]) -> None:
    """Complete the state template among the loaded ``templates``: the daily templates'
    gateway fields with the members only state documents have (its own ``flock``
    properties), and ``data.*`` as the results template, as loaded, maps it (the state's
    rows are results rows)."""
    by_name = {t.name: t for t in templates}
    props = by_name[names.state].body["template"]["mappings"]["properties"]
    own = props.pop(GATEWAY)["properties"]
    if set(own) & set(shared[GATEWAY]["properties"]):
        raise ValueError(f"{_STATE_TEMPLATE} maps {sorted(own)} of the gateway's fields itself")
    shared[GATEWAY]["properties"].update(own)
    props.update(shared)
    results = by_name[names.prefixed(_RESULTS_TEMPLATE)].body["template"]["mappings"]
    props[CLIENT] = copy.deepcopy(results["properties"][CLIENT])


@translate_errors
def ensure_state_index(client: Elasticsearch, names: IndexNames) -> str:
    """Create the current-state index (its template gives the mapping), or put a newer
    template's mapping on the existing index ("updated": fields are only ever added)."""
    if not client.indices.exists(index=names.state):
        return _create_index(client, names.state)
    (tpl,) = [t for t in load_templates(names) if t.name == names.state]
    wanted = tpl.body["template"]["mappings"]["properties"]
    mapping = client.indices.get_mapping(index=names.state)[names.state]["mappings"]
    current = _field_types(mapping.get("properties", {}))
    if all(current.get(path) == kind for path, kind in _field_types(wanted).items()):
        return "unchanged"
    client.indices.put_mapping(index=names.state, properties=wanted)
    return "updated"


def _field_types(props: dict[str, Any], path: str = "") -> dict[str, str]:
    """Every mapped field's dotted path and type (Elasticsearch answers a mapping in its
    own spelling: compared by what it maps, not by its text)."""
    out = {}
    for name, spec in props.items():
        if "properties" in spec:
            out.update(_field_types(spec["properties"], f"{path}{name}."))
        else:
            out[f"{path}{name}"] = str(spec.get("type", "object"))
    return out


def _add_registry_fields(client: Elasticsearch, names: IndexNames) -> str:
    # The registry's mapping is strict: a field a newer gateway writes must be in the
    # existing index before it is written, or every write to the record would fail.
    (tpl,) = [t for t in load_templates(names) if t.name == names.agents]
    wanted = tpl.body["template"]["mappings"]["properties"]
    mapping = client.indices.get_mapping(index=names.agents)[names.agents]["mappings"]
    current = mapping.get("properties", {})
    missing = {k: v for k, v in wanted.items() if k not in current}
    if not missing:
        return "unchanged"
    client.indices.put_mapping(index=names.agents, properties=missing)
    return "updated"


@translate_errors
def missing_templates(client: Elasticsearch, names: IndexNames) -> list[str]:
    """The names of the templates that are not installed."""
    return [
        tpl.name
        for tpl in load_templates(names)
        if not client.indices.exists_index_template(name=tpl.name)
    ]


@translate_errors
def setup_storage(client: Elasticsearch, names: IndexNames) -> dict[str, Any]:
    report: dict[str, Any] = {"templates": install_templates(client, names)}
    report["registry_index"] = ensure_registry_index(client, names)
    report["state_index"] = ensure_state_index(client, names)
    report["changed"] = (
        report["registry_index"] != "unchanged"
        or report["state_index"] != "unchanged"
        or any(v != "unchanged" for v in report["templates"].values())
    )
    return report
