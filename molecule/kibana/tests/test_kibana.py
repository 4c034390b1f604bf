"""Verify the kibana role on a systemd container running the Kibana API STAND-IN.

Kibana cannot be downloaded on our build machines, so the role's archive method installs
test-infra/kibana-standin's tarball (kibana-<version>/bin/kibana, NOT Kibana).
What this proves about the role: the unit and service account, TLS served with the pki
certificate, kibana.yml rendered with the cluster's hosts and CA, the session timeouts and
no secret, the controller's encryption keys and (once side_effect switched security on)
kibana_system's password in the Kibana keystore (the stand-in's keystore tool), Kibana
started with them, the dashboards imported once (converge), not again (idempotence and
check runs), and once more after the ndjson changed (side_effect), and the viewer's
feature privileges written once, with Kibana 8.19's _v2 feature ids. elasticsearch.hosts
names two hosts that do not run (the stand-in never contacts Elasticsearch).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import testinfra

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).parents[3]))
KIBANA = "kibana-kb1"
URL = f"https://{KIBANA}:5601"
CA = "/etc/flock/pki/ca.crt"
NDJSON = PROJECT / "dashboards/flock-dashboards.ndjson"
CHANGED_NDJSON = EPHEMERAL / "flock-dashboards-changed.ndjson"

testinfra_hosts = [f"ansible://{KIBANA}?ansible_inventory={INVENTORY}"]


@pytest.fixture(scope="module")
def kb():
    return testinfra.get_host(f"ansible://{KIBANA}?ansible_inventory={INVENTORY}")


def _get_json(host, path):
    out = host.check_output("curl -sS --fail --cacert %s %s", CA, URL + path)
    return json.loads(out)


@pytest.fixture(scope="module")
def config(kb):
    out = kb.check_output(
        "python3 -c %s",
        "import json, yaml; print(json.dumps(yaml.safe_load(open('/etc/kibana/kibana.yml'))))",
    )
    return json.loads(out)


def test_unit_active_as_kibana_user(kb):
    svc = kb.service("kibana")
    assert svc.is_running and svc.is_enabled
    props = dict(
        line.split("=", 1)
        for line in kb.check_output(
            "systemctl show kibana --property=User --property=Environment"
        ).splitlines()
    )
    assert props["User"] == "kibana"
    assert "KBN_PATH_CONF=/etc/kibana" in props["Environment"]
    main_pid = kb.check_output("systemctl show kibana --property=MainPID --value")
    assert kb.check_output("ps -o user= -p %s", main_pid).strip() == "kibana"


def test_installed_from_the_standin_archive(kb):
    home = kb.file("/usr/share/kibana")
    assert home.is_symlink and home.linked_to.startswith("/usr/share/kibana-")
    assert kb.file("/usr/share/kibana/STANDIN-NOT-KIBANA.txt").exists


def test_tls_served_with_the_pki_certificate(kb):
    # The peer certificate Kibana serves, verified against the CA for the host's name,
    # is byte for byte the one the pki step issued for this host.
    script = (
        "import ssl, socket, hashlib;"
        f"c = ssl.create_default_context(cafile='{CA}');"
        f"s = c.wrap_socket(socket.create_connection(('{KIBANA}', 5601)),"
        f" server_hostname='{KIBANA}');"
        "print(hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest())"
    )
    served = kb.check_output("python3 -c %s", script).strip()
    issued = kb.check_output(
        "openssl x509 -in /etc/flock/pki/%s.crt -outform DER | sha256sum", KIBANA
    ).split()[0]
    assert served == issued
    # Plain HTTP is not served.
    assert kb.run("curl -sS --max-time 5 http://%s:5601/api/status", KIBANA).rc != 0


def test_status_available(kb):
    assert _get_json(kb, "/api/status")["status"]["overall"]["level"] == "available"


def test_config_has_cluster_hosts_and_ca(kb, config):
    assert config["elasticsearch.hosts"] == ["https://kibana-es1:9200", "https://kibana-es2:9200"]
    assert config["elasticsearch.ssl.certificateAuthorities"] == ["/etc/kibana/certs/ca.crt"]
    assert config["elasticsearch.ssl.verificationMode"] == "full"
    assert kb.file("/etc/kibana/certs/ca.crt").content == kb.file(CA).content
    assert config["server.ssl.enabled"] is True
    assert config["server.publicBaseUrl"] == URL
    # Security on (side_effect): the user is named here, its password is in the keystore.
    assert config["elasticsearch.username"] == "kibana_system"
    assert config["telemetry.optIn"] is False
    assert config["xpack.security.session.idleTimeout"] == "1h"
    assert config["xpack.security.session.lifespan"] == "8h"


ENCRYPTION_KEYS = (
    "xpack.encryptedSavedObjects.encryptionKey",
    "xpack.security.encryptionKey",
    "xpack.reporting.encryptionKey",
)
KEYSTORE_SETTINGS = sorted([*ENCRYPTION_KEYS, "elasticsearch.password"])
ES_PASSWORD = "molecule-kibana-system-password-0123"  # noqa: S105 - side_effect.yml's test value


def _keystore(kb):
    # The stand-in keystore's own (JSON) format; Kibana's is obfuscated.
    return json.loads(kb.file("/etc/kibana/kibana.keystore").content_string)["settings"]


def test_secrets_in_the_keystore_never_in_kibana_yml(kb, config):
    conf = kb.file("/etc/kibana/kibana.yml")
    assert (conf.user, conf.group, conf.mode) == ("root", "kibana", 0o640)
    key = kb.file("/etc/kibana/certs/kibana.key")
    assert (key.user, key.group, key.mode) == ("root", "kibana", 0o640)
    store = kb.file("/etc/kibana/kibana.keystore")
    assert (store.user, store.group, store.mode) == ("root", "kibana", 0o660)
    hashes = kb.file("/etc/kibana/kibana.keystore.sha256")
    assert (hashes.user, hashes.mode) == ("root", 0o600)
    listed = kb.check_output("KBN_PATH_CONF=/etc/kibana /usr/share/kibana/bin/kibana-keystore list")
    assert listed.split() == KEYSTORE_SETTINGS
    settings = _keystore(kb)
    journal = kb.check_output("journalctl -u kibana --no-pager")
    for name in ENCRYPTION_KEYS:
        kept = EPHEMERAL / "credentials/kibana" / name
        assert oct(kept.stat().st_mode & 0o777) == "0o600"
        value = kept.read_text()
        assert len(value) == 48
        assert settings[name] == value
        assert name not in config
        assert value not in conf.content_string and value not in journal
    assert settings["elasticsearch.password"] == ES_PASSWORD
    assert "elasticsearch.password" not in config
    assert ES_PASSWORD not in conf.content_string and ES_PASSWORD not in journal


def test_kibana_started_with_the_keystore_settings(kb):
    """The last start read the four settings from the keystore and authenticates to
    Elasticsearch with kibana_system's password (kibana.yml names the user only; without
    the password the stand-in, like Kibana, would not start)."""
    starts = [
        json.loads(line[line.index("{") :])
        for line in kb.check_output("journalctl -u kibana --no-pager -o cat").splitlines()
        if "Kibana stand-in is available" in line
    ]
    assert len(starts) >= 2, starts  # converge, then the restart for the new secret
    assert starts[-1]["keystore_settings"] == KEYSTORE_SETTINGS
    assert starts[-1]["elasticsearch_auth"] == "basic"
    assert starts[0]["elasticsearch_auth"] == "none"


def test_viewer_feature_privileges_written_once_with_v2_ids(kb):
    role = _get_json(kb, "/api/security/role/flock_dashboards")
    assert role["kibana"] == [
        {
            "base": [],
            "feature": {
                "dashboard_v2": ["read"],
                "discover_v2": ["read"],
                "visualize_v2": ["read"],
            },
            "spaces": ["*"],
        }
    ]
    assert _get_json(kb, "/__standin__/roles")["role_writes"] == 1


def test_dashboards_imported_once_then_once_per_change(kb):
    stats = _get_json(kb, "/__standin__/imports")
    # converge imported; idempotence and the check runs did not; side_effect (changed
    # ndjson) imported once more.
    assert stats["import_requests"] == 2, stats
    first, second = stats["imports"]
    lines = [line for line in NDJSON.read_text().splitlines() if line.strip()]
    assert first["successCount"] == len(lines) and first["errorCount"] == 0
    assert second["successCount"] == len(lines) and second["overwrite"] is True
    found = _get_json(kb, "/api/saved_objects/_find?type=dashboard&per_page=100")
    titles = {o["attributes"]["title"] for o in found["saved_objects"]}
    assert titles == {"Flock", "Flock - Linux", "Flock - Fleet overview (changed)"}
    marker = kb.file("/var/lib/kibana/flock-dashboards.sha256").content_string.strip()
    assert marker == hashlib.sha256(CHANGED_NDJSON.read_bytes()).hexdigest()
