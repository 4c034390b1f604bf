#!/usr/bin/env python3
"""STAND-IN for Kibana's HTTP API. This is NOT Kibana.

Kibana cannot be obtained on the machines this project is tested on (no Elastic
downloads), so the offline Molecule scenario of the ``kibana`` role runs this
program in its place. It stands in for exactly the parts of Kibana 8 that the role
touches, and rejects what real Kibana would reject there:

* start-up: reads ``$KBN_PATH_CONF/kibana.yml`` (or ``-c/--config``) like Kibana
  does (flat dotted keys or nested maps), then the settings of the keystore in that
  directory (``kibana.keystore``, written by the stand-in ``bin/kibana-keystore``,
  ``kibana_keystore_standin.py``) over them, and refuses to start, as Kibana does, on a
  missing/unreadable TLS certificate, key or Elasticsearch CA file, on
  ``elasticsearch.username: elastic``, on both a username and a service account
  token, on an encryption key shorter than 32 characters, on a
  ``server.publicBaseUrl`` that is not an absolute URL without a trailing slash, and
  when run as root without ``--allow-root``;
* ``GET /api/status``: Kibana 8's shape, ``status.overall.level == "available"``;
* ``POST /api/saved_objects/_import[?overwrite=true]``: multipart upload of an
  ``.ndjson`` file in the ``file`` field; 400 without a ``kbn-xsrf`` header, 400
  with Kibana's error shape (``statusCode``/``error``/``message``) for malformed
  ndjson or a wrong file extension; per-object ``unsupported_type``,
  ``missing_references`` and ``conflict`` errors; response
  ``{"success", "successCount", "successResults", "warnings"[, "errors"]}``;
* ``GET /api/saved_objects/_find?type=...`` and ``GET /api/saved_objects/<type>/<id>``
  over what was imported (kept in ``path.data``, so a restart keeps them, as Kibana
  keeps saved objects in Elasticsearch);
* ``PUT /api/security/role/<name>`` (Kibana's role API: feature privileges): 400
  without ``kbn-xsrf``, 401 without HTTP basic credentials, 400 with Kibana's error
  shape for a body Kibana's schema rejects (unknown keys, ``elasticsearch`` missing,
  ``base`` and ``feature`` together, ``*`` mixed with other spaces, an unknown base or
  feature privilege, a feature id Kibana 8.19 does not have); 204 on success. ``GET
  /api/security/role/<name>`` returns it in Kibana's shape, 404 when absent. Roles are
  kept in ``path.data``; the stand-in does NOT write them to Elasticsearch (real Kibana
  stores them there as application privileges of ``kibana-.kibana``) and does not check
  the credentials, only that they are given.

It does NOT talk to Elasticsearch (``elasticsearch.hosts`` is only validated), does
not render anything, has no security/login, and does not migrate saved objects.
``GET /__standin__/imports`` and ``GET /__standin__/roles`` exist only in the stand-in:
they count import requests and role writes, so tests can prove the role makes each
call once and only once.

Standard library + PyYAML (python3-yaml), Python 3.11.
"""

from __future__ import annotations

import argparse
import datetime as dt
import email.parser
import email.policy
import json
import os
import signal
import socket
import ssl
import sys
import threading
import urllib.parse
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import yaml
from kibana_keystore_standin import keystore_path, read_keystore

STANDIN_VERSION = "1"
# Saved-object types the stand-in accepts (Kibana knows many more; these are what
# dashboards are made of).
KNOWN_TYPES = {
    "index-pattern",
    "lens",
    "visualization",
    "search",
    "dashboard",
    "tag",
    "config",
    "map",
}
ICONS = {
    "index-pattern": "indexPatternApp",
    "lens": "lensApp",
    "visualization": "visualizeApp",
    "dashboard": "dashboardApp",
    "search": "discoverApp",
}


# Feature ids of Kibana 8.19's features registry (GET /api/features) whose privileges a
# role may grant, and the privileges each accepts (all/read plus the minimal_* forms of
# features with sub-features). Deprecated ids Kibana 8.19 still accepts and maps
# (e.g. discover -> discover_v2 internally) are listed too: its role API takes both.
KIBANA_FEATURES = {
    "discover",
    "discover_v2",
    "dashboard",
    "dashboard_v2",
    "visualize",
    "visualize_v2",
    "canvas",
    "maps",
    "maps_v2",
    "ml",
    "graph",
    "logs",
    "infrastructure",
    "apm",
    "uptime",
    "observabilityCases",
    "observabilityAIAssistant",
    "slo",
    "siem",
    "siemV2",
    "securitySolutionCases",
    "securitySolutionAssistant",
    "dev_tools",
    "advancedSettings",
    "indexPatterns",
    "savedObjectsManagement",
    "savedQueryManagement",
    "savedObjectsTagging",
    "filesManagement",
    "filesSharedImage",
    "fleet",
    "fleetv2",
    "osquery",
    "actions",
    "stackAlerts",
    "generalCases",
    "rulesSettings",
    "maintenanceWindow",
    "monitoring",
    "enterpriseSearch",
    "guidedOnboardingFeature",
    "aiAssistantManagementSelection",
    "inventory",
    "dataQuality",
}
FEATURE_PRIVILEGES = {"all", "read", "minimal_all", "minimal_read"}
BASE_PRIVILEGES = {"all", "read"}
ROLE_KEYS = {"elasticsearch", "kibana", "metadata", "description", "transient_metadata"}
ES_ROLE_KEYS = {"cluster", "indices", "remote_indices", "remote_cluster", "run_as"}
INDEX_KEYS = {"names", "privileges", "field_security", "query", "allow_restricted_indices"}


def validate_role(body):
    """Errors Kibana's PUT /api/security/role schema would report; [] when it accepts."""
    if not isinstance(body, dict):
        return ["[request body]: expected a plain object value"]
    errors = [
        f"[request body.{k}]: definition for this key is missing" for k in body.keys() - ROLE_KEYS
    ]
    es = body.get("elasticsearch")
    if not isinstance(es, dict):
        errors.append("[request body.elasticsearch]: expected a plain object value")
    else:
        errors += [
            f"[request body.elasticsearch.{k}]: definition for this key is missing"
            for k in es.keys() - ES_ROLE_KEYS
        ]
        for i, entry in enumerate(es.get("indices", [])):
            if not isinstance(entry, dict) or not entry.get("names") or not entry.get("privileges"):
                errors.append(
                    f"[request body.elasticsearch.indices.{i}]: names and privileges are required"
                )
            else:
                errors += [
                    f"[request body.elasticsearch.indices.{i}.{k}]: "
                    "definition for this key is missing"
                    for k in entry.keys() - INDEX_KEYS
                ]
    kibana = body.get("kibana", [])
    if not isinstance(kibana, list):
        return [*errors, "[request body.kibana]: expected value of type [array]"]
    for i, entry in enumerate(kibana):
        where = f"[request body.kibana.{i}"
        if not isinstance(entry, dict):
            errors.append(f"{where}]: expected a plain object value")
            continue
        errors += [
            f"{where}.{k}]: definition for this key is missing"
            for k in entry.keys() - {"base", "feature", "spaces"}
        ]
        base, feature, spaces = (
            entry.get("base", []),
            entry.get("feature", {}),
            entry.get("spaces", ["*"]),
        )
        if (
            not isinstance(base, list)
            or not isinstance(feature, dict)
            or not isinstance(spaces, list)
        ):
            errors.append(f"{where}]: base and spaces are arrays, feature is an object")
            continue
        if base and feature:
            errors.append(f"{where}]: Cannot specify both base and feature privileges")
        errors += [
            f"{where}.base]: unknown base privilege [{b}]" for b in base if b not in BASE_PRIVILEGES
        ]
        if "*" in spaces and len(spaces) > 1:
            errors.append(
                f"{where}.spaces]: Global spaces ['*'] cannot be combined with other spaces"
            )
        for fid, privs in feature.items():
            if fid not in KIBANA_FEATURES:
                errors.append(f"{where}.feature]: Feature [{fid}] does not exist")
            elif not isinstance(privs, list) or not privs:
                errors.append(f"{where}.feature.{fid}]: expected a non-empty array of privileges")
            else:
                errors += [
                    f"{where}.feature.{fid}]: Feature [{fid}] does not support privilege [{p}]"
                    for p in privs
                    if p not in FEATURE_PRIVILEGES
                ]
    return errors


class ConfigError(Exception):
    """kibana.yml is invalid: real Kibana would not start either."""


def log(message, **fields):
    entry = {"@timestamp": dt.datetime.now(dt.UTC).isoformat(), "message": message, **fields}
    print(json.dumps(entry, sort_keys=True), flush=True)


# --------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------


def flatten(node, prefix=""):
    """Kibana accepts ``a.b: 1`` and ``a: {b: 1}`` alike; normalise to dotted keys."""
    out = {}
    if isinstance(node, dict):
        for key, value in node.items():
            full = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict) and value:
                out.update(flatten(value, full))
            else:
                out[full] = value
    return out


def _as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _readable(path, what):
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc.strerror}") from exc


def load_config(path, home, keystore=None):
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot load {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a map")
    conf = flatten(raw)
    stored = read_keystore(Path(keystore)) if keystore else {}
    conf.update(stored)

    settings = {
        "host": str(conf.get("server.host", "localhost")),
        "port": int(conf.get("server.port", 5601)),
        "name": str(conf.get("server.name", socket.gethostname())),
        "data": str(conf.get("path.data", os.path.join(home, "data"))),
        "public_base_url": conf.get("server.publicBaseUrl"),
        "es_hosts": _as_list(conf.get("elasticsearch.hosts", ["http://localhost:9200"])),
        "ssl": bool(conf.get("server.ssl.enabled", False)),
    }

    if settings["ssl"]:
        for key in ("server.ssl.certificate", "server.ssl.key"):
            if not conf.get(key):
                raise ConfigError(f"[{key}]: required when server.ssl.enabled is true")
            _readable(conf[key], key)
        settings["cert"] = conf["server.ssl.certificate"]
        settings["key"] = conf["server.ssl.key"]

    url = settings["public_base_url"]
    if url is not None:
        parsed = urllib.parse.urlparse(str(url))
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError("[server.publicBaseUrl]: must be an absolute URL")
        if str(url).endswith("/") or parsed.query or parsed.fragment:
            raise ConfigError(
                "[server.publicBaseUrl]: must not end with a slash or contain query/fragment"
            )

    for host in settings["es_hosts"]:
        if urllib.parse.urlparse(str(host)).scheme not in ("http", "https"):
            raise ConfigError(f"[elasticsearch.hosts]: {host} is not an http(s) URL")
    for ca in _as_list(conf.get("elasticsearch.ssl.certificateAuthorities")):
        _readable(ca, "elasticsearch.ssl.certificateAuthorities")
    mode = conf.get("elasticsearch.ssl.verificationMode", "full")
    if mode not in ("none", "certificate", "full"):
        raise ConfigError(f"[elasticsearch.ssl.verificationMode]: invalid value {mode}")

    user = conf.get("elasticsearch.username")
    token = conf.get("elasticsearch.serviceAccountToken")
    if user == "elastic":
        raise ConfigError(
            '[elasticsearch.username]: value of "elastic" is forbidden. This is a superuser'
            " account that cannot write to system indices that Kibana needs to function."
        )
    if user and token:
        raise ConfigError(
            "[elasticsearch.username]: cannot be used with [elasticsearch.serviceAccountToken]"
        )
    if user and not conf.get("elasticsearch.password"):
        raise ConfigError("[elasticsearch.password]: required with [elasticsearch.username]")
    settings["es_auth"] = "service-token" if token else ("basic" if user else "none")

    for key in (
        "xpack.encryptedSavedObjects.encryptionKey",
        "xpack.security.encryptionKey",
        "xpack.reporting.encryptionKey",
    ):
        value = conf.get(key)
        if value is not None and len(str(value)) < 32:
            raise ConfigError(f"[{key}]: value has length {len(str(value))} but it must be >= 32")
    settings["encryption_keys"] = sorted(
        k for k in conf if k.startswith("xpack.") and k.endswith("encryptionKey")
    )
    # Names only, never values: which settings came from the keystore.
    settings["keystore_settings"] = sorted(stored)
    return settings


# --------------------------------------------------------------------------
# saved-object store (a JSON file in path.data)
# --------------------------------------------------------------------------


class Store:
    def __init__(self, data_dir):
        self.path = Path(data_dir) / "standin-saved-objects.json"
        self.lock = threading.Lock()
        try:
            state = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            state = {}
        self.objects = {tuple(k.split("/", 1)): v for k, v in state.get("objects", {}).items()}
        self.imports = state.get("imports", [])
        self.roles = state.get("roles", {})
        self.role_writes = state.get("role_writes", [])

    def save(self):
        state = {
            "objects": {f"{t}/{i}": obj for (t, i), obj in self.objects.items()},
            "imports": self.imports,
            "roles": self.roles,
            "role_writes": self.role_writes,
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)


def parse_ndjson(data):
    """Objects of an export file; raises ValueError like Kibana's ndjson stream."""
    objects = []
    for lineno, line in enumerate(data.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"Unexpected token in JSON at position {exc.pos} (line {lineno})"
            ) from exc
        if not isinstance(obj, dict):
            raise ValueError(f"Line {lineno} is not a saved object")
        # An export's trailing summary line is ignored by Kibana's import.
        if "exportedCount" in obj and "type" not in obj:
            continue
        objects.append(obj)
    return objects


def run_import(store, objects, overwrite):
    """Kibana's import semantics, reduced to what dashboards need."""
    errors, results, accepted = [], [], []
    in_file = {(o.get("type"), o.get("id")) for o in objects}
    with store.lock:
        for obj in objects:
            otype, oid = obj.get("type"), obj.get("id")
            title = (obj.get("attributes") or {}).get("title", "")
            base = {"id": oid, "type": otype, "title": title, "meta": {"title": title}}
            if otype not in KNOWN_TYPES or not oid:
                errors.append({**base, "error": {"type": "unsupported_type"}})
                continue
            missing = [
                {"type": r.get("type"), "id": r.get("id")}
                for r in obj.get("references", [])
                if (r.get("type"), r.get("id")) not in in_file
                and (r.get("type"), r.get("id")) not in store.objects
            ]
            if missing:
                errors.append(
                    {**base, "error": {"type": "missing_references", "references": missing}}
                )
                continue
            exists = (otype, oid) in store.objects
            if exists and not overwrite:
                errors.append({**base, "error": {"type": "conflict"}})
                continue
            accepted.append(obj)
            result = {"type": otype, "id": oid, "meta": {"title": title}, "managed": False}
            if otype in ICONS:
                result["meta"]["icon"] = ICONS[otype]
            if exists:
                result["overwrite"] = True
            results.append(result)
        now = dt.datetime.now(dt.UTC).isoformat()
        for obj in accepted:
            stored = dict(obj)
            stored["updated_at"] = now
            stored.setdefault("namespaces", ["default"])
            store.objects[(obj["type"], obj["id"])] = stored
        store.imports.append(
            {
                "at": now,
                "overwrite": overwrite,
                "successCount": len(accepted),
                "errorCount": len(errors),
                "objects": [[o["type"], o["id"]] for o in accepted],
            }
        )
        store.save()
    response = {"successCount": len(accepted), "success": not errors, "warnings": []}
    if results:
        response["successResults"] = results
    if errors:
        response["errors"] = errors
    return response


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------


def error_body(status, message):
    return {"statusCode": status.value, "error": status.phrase, "message": message}


class Handler(BaseHTTPRequestHandler):
    server_version = "kibana-standin"
    sys_version = ""

    # set on the class by serve()
    settings: ClassVar[dict] = {}
    store: Store
    version = "0.0.0"

    def log_message(self, format, *args):
        log("request", client=self.client_address[0], line=format % args)

    def send_json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status.value)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("kbn-name", self.settings["name"])
        self.end_headers()
        self.wfile.write(data)

    def route(self):
        url = urllib.parse.urlsplit(self.path)
        return url.path.rstrip("/") or "/", urllib.parse.parse_qs(url.query)

    def do_GET(self):
        path, query = self.route()
        if path == "/api/status":
            return self.send_json(HTTPStatus.OK, self.status())
        if path == "/api/saved_objects/_find":
            return self.send_json(HTTPStatus.OK, self.find(query))
        if path == "/__standin__/imports":
            with self.store.lock:
                imports = list(self.store.imports)
            return self.send_json(
                HTTPStatus.OK,
                {
                    "standin": True,
                    "note": "stand-in only endpoint; real Kibana has no such API",
                    "import_requests": len(imports),
                    "imports": imports,
                },
            )
        if path == "/__standin__/roles":
            with self.store.lock:
                writes = list(self.store.role_writes)
            return self.send_json(
                HTTPStatus.OK,
                {
                    "standin": True,
                    "note": "stand-in only endpoint; real Kibana has no such API",
                    "role_writes": len(writes),
                    "writes": writes,
                },
            )
        parts = path.split("/")
        if len(parts) == 5 and parts[1:4] == ["api", "security", "role"]:
            with self.store.lock:
                role = self.store.roles.get(parts[4])
            if role is None:
                return self.send_json(
                    HTTPStatus.NOT_FOUND, error_body(HTTPStatus.NOT_FOUND, "Not Found")
                )
            return self.send_json(HTTPStatus.OK, role)
        if len(parts) == 5 and parts[1:3] == ["api", "saved_objects"]:
            with self.store.lock:
                obj = self.store.objects.get((parts[3], parts[4]))
            if obj is None:
                return self.send_json(
                    HTTPStatus.NOT_FOUND,
                    error_body(
                        HTTPStatus.NOT_FOUND, f"Saved object [{parts[3]}/{parts[4]}] not found"
                    ),
                )
            return self.send_json(HTTPStatus.OK, obj)
        return self.send_json(HTTPStatus.NOT_FOUND, error_body(HTTPStatus.NOT_FOUND, "Not Found"))

    def do_POST(self):
        path, query = self.route()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if path != "/api/saved_objects/_import":
            return self.send_json(
                HTTPStatus.NOT_FOUND, error_body(HTTPStatus.NOT_FOUND, "Not Found")
            )
        bad = HTTPStatus.BAD_REQUEST
        if "kbn-xsrf" not in {k.lower() for k in self.headers}:
            return self.send_json(bad, error_body(bad, "Request must contain a kbn-xsrf header."))
        overwrite = query.get("overwrite", ["false"])[-1] == "true"
        if overwrite and query.get("createNewCopies", ["false"])[-1] == "true":
            return self.send_json(
                bad, error_body(bad, "cannot use [overwrite] with [createNewCopies]")
            )
        upload = self.multipart_file(body)
        if upload is None:
            return self.send_json(
                bad,
                error_body(
                    bad, "[request body.file]: expected value of type [Stream] but got [undefined]"
                ),
            )
        filename, data = upload
        ext = os.path.splitext(filename or "")[1]
        if ext != ".ndjson":
            return self.send_json(bad, error_body(bad, f"Invalid file extension {ext}"))
        try:
            objects = parse_ndjson(data)
        except (ValueError, UnicodeDecodeError) as exc:
            return self.send_json(bad, error_body(bad, str(exc)))
        response = run_import(self.store, objects, overwrite)
        log(
            "saved objects imported",
            successCount=response["successCount"],
            errors=len(response.get("errors", [])),
        )
        return self.send_json(HTTPStatus.OK, response)

    def do_PUT(self):
        path, _ = self.route()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = path.split("/")
        if not (len(parts) == 5 and parts[1:4] == ["api", "security", "role"] and parts[4]):
            return self.send_json(
                HTTPStatus.NOT_FOUND, error_body(HTTPStatus.NOT_FOUND, "Not Found")
            )
        bad = HTTPStatus.BAD_REQUEST
        if "kbn-xsrf" not in {k.lower() for k in self.headers}:
            return self.send_json(bad, error_body(bad, "Request must contain a kbn-xsrf header."))
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            unauth = HTTPStatus.UNAUTHORIZED
            return self.send_json(unauth, error_body(unauth, "Unauthorized"))
        try:
            role = json.loads(body or b"null")
        except json.JSONDecodeError as exc:
            return self.send_json(
                bad, error_body(bad, f"Invalid request payload JSON format: {exc}")
            )
        errors = validate_role(role)
        if errors:
            return self.send_json(bad, error_body(bad, "; ".join(errors)))
        name = parts[4]
        es = role["elasticsearch"]
        stored = {
            "name": name,
            "description": role.get("description", ""),
            "metadata": role.get("metadata", {}),
            "transient_metadata": {"enabled": True},
            "elasticsearch": {
                "cluster": es.get("cluster", []),
                "indices": es.get("indices", []),
                "run_as": es.get("run_as", []),
            },
            "kibana": [
                {
                    "base": k.get("base", []),
                    "feature": k.get("feature", {}),
                    "spaces": k.get("spaces", ["*"]),
                }
                for k in role.get("kibana", [])
            ],
            "_transform_error": [],
            "_unrecognized_applications": [],
        }
        with self.store.lock:
            self.store.roles[name] = stored
            self.store.role_writes.append({"at": dt.datetime.now(dt.UTC).isoformat(), "name": name})
            self.store.save()
        log("role written", name=name)
        self.send_response(HTTPStatus.NO_CONTENT.value)
        self.send_header("kbn-name", self.settings["name"])
        self.end_headers()

    def multipart_file(self, body):
        ctype = self.headers.get("Content-Type", "")
        if not ctype.startswith("multipart/form-data"):
            return None
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body
        )
        if not message.is_multipart():
            return None
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "file":
                return part.get_filename(), part.get_payload(decode=True) or b""
        return None

    def status(self):
        return {
            "name": self.settings["name"],
            "uuid": self.server.kibana_uuid,
            "version": {
                "number": self.version,
                "build_hash": "standin",
                "build_number": 0,
                "build_snapshot": False,
                "build_flavor": "traditional",
            },
            "status": {
                "overall": {
                    "level": "available",
                    "summary": "All services and plugins are available (Kibana stand-in)",
                },
                "core": {
                    "elasticsearch": {"level": "available", "summary": "not contacted (stand-in)"},
                    "savedObjects": {"level": "available", "summary": "stand-in store"},
                },
                "plugins": {},
            },
            "metrics": {"last_updated": dt.datetime.now(dt.UTC).isoformat()},
        }

    def find(self, query):
        types = [t for value in query.get("type", []) for t in value.split(",")]
        per_page = int(query.get("per_page", ["20"])[-1])
        page = int(query.get("page", ["1"])[-1])
        with self.store.lock:
            hits = [
                obj
                for (otype, _), obj in sorted(self.store.objects.items())
                if not types or otype in types
            ]
        start = (page - 1) * per_page
        return {
            "page": page,
            "per_page": per_page,
            "total": len(hits),
            "saved_objects": hits[start : start + per_page],
        }


def serve(settings, version):
    os.makedirs(settings["data"], exist_ok=True)
    Handler.settings = settings
    Handler.store = Store(settings["data"])
    Handler.version = version
    server = ThreadingHTTPServer((settings["host"], settings["port"]), Handler)
    uuid_file = Path(settings["data"]) / "uuid"
    if not uuid_file.exists():
        uuid_file.write_text(str(uuid.uuid4()), encoding="utf-8")
    server.kibana_uuid = uuid_file.read_text(encoding="utf-8").strip()
    scheme = "http"
    if settings["ssl"]:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(settings["cert"], settings["key"])
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"

    def stop(signum, frame):
        log("stopping", signal=signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log(
        "Kibana stand-in is available",
        url=f"{scheme}://{settings['host']}:{settings['port']}",
        publicBaseUrl=settings["public_base_url"],
        elasticsearch_hosts=settings["es_hosts"],
        elasticsearch_auth=settings["es_auth"],
        encryption_keys=settings["encryption_keys"],
        keystore_settings=settings["keystore_settings"],
        version=version,
    )
    server.serve_forever()
    server.server_close()


def main(argv=None):
    home = os.environ.get("KBN_HOME") or str(Path(__file__).resolve().parents[1])
    parser = argparse.ArgumentParser(description="Kibana HTTP API stand-in (not Kibana)")
    parser.add_argument("-c", "--config", default=None, help="path to kibana.yml")
    parser.add_argument("--allow-root", action="store_true")
    parser.add_argument("--version", action="store_true")
    args = parser.parse_args(argv)
    try:
        package = json.loads((Path(home) / "package.json").read_text(encoding="utf-8"))
        version = package["version"]
    except (OSError, ValueError, KeyError):
        version = "0.0.0"
    if args.version:
        print(version)
        return 0
    if os.geteuid() == 0 and not args.allow_root:
        print("Kibana should not be run as root.  Use --allow-root to continue.", file=sys.stderr)
        return 1
    conf_dir = os.environ.get("KBN_PATH_CONF") or os.path.join(home, "config")
    config = args.config or os.path.join(conf_dir, "kibana.yml")
    try:
        settings = load_config(config, home, keystore_path())
    except ConfigError as exc:
        log("FATAL configuration error", error=str(exc), config=config)
        print(f"FATAL  Error: {exc}", file=sys.stderr)
        return 78  # EX_CONFIG; Kibana exits non-zero on invalid config as well
    serve(settings, version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
