"""Verify roles/pki on the scenario's containers (files, modes, chain, SANs)."""

import re

import pytest

PKI = "/etc/flock/pki"
ALL_NODES = ["pki-node1", "pki-node2"]


@pytest.fixture()
def name(host):
    return host.backend.get_hostname()


def sans(host, name):
    out = host.check_output("openssl x509 -noout -ext subjectAltName -in %s/%s.crt", PKI, name)
    return set(re.findall(r"(DNS:[^,\s]+|IP Address:[^,\s]+)", out))


def test_directory(host):
    d = host.file(PKI)
    assert d.is_directory
    assert (d.user, d.group, d.mode) == ("root", "root", 0o755)


def test_public_files(host, name):
    for f in (f"{PKI}/ca.crt", f"{PKI}/{name}.crt"):
        f = host.file(f)
        assert f.is_file, f.path
        assert (f.user, f.group, f.mode) == ("root", "root", 0o644), f.path


def test_key_owner_and_mode(host, name):
    key = host.file(f"{PKI}/{name}.key")
    assert key.is_file
    assert key.user == "root"
    if name == "pki-node2":  # pki_group: flock-tls
        assert host.group("flock-tls").exists
        assert (key.group, key.mode) == ("flock-tls", 0o640)
    else:
        assert (key.group, key.mode) == ("root", 0o600)


def test_only_own_key_on_host(host, name):
    files = set(host.check_output("ls -1 %s", PKI).split())
    assert files == {"ca.crt", f"{name}.crt", f"{name}.key"}
    # The CA key never leaves the controller.
    assert host.run("grep -rl 'PRIVATE KEY' / --include=ca.key -s").stdout.strip() == ""


def test_certificate_chains_to_ca(host, name):
    cmd = host.run("openssl verify -CAfile %s/ca.crt %s/%s.crt", PKI, PKI, name)
    assert cmd.rc == 0, cmd.stderr
    assert cmd.stdout.strip().endswith(": OK")


def test_ca_is_a_ca(host):
    out = host.check_output("openssl x509 -noout -ext basicConstraints,keyUsage -in %s/ca.crt", PKI)
    assert "CA:TRUE" in out
    assert "Certificate Sign" in out


def test_host_cert_usage(host, name):
    out = host.check_output(
        "openssl x509 -noout -subject -ext basicConstraints,extendedKeyUsage -in %s/%s.crt",
        PKI,
        name,
    )
    assert f"CN = {name}" in out
    assert "CA:FALSE" in out
    assert "TLS Web Server Authentication" in out
    assert "TLS Web Client Authentication" in out


def test_key_matches_certificate(host, name):
    cert_pub = host.check_output("openssl x509 -noout -pubkey -in %s/%s.crt", PKI, name)
    key_pub = host.check_output("openssl pkey -pubout -in %s/%s.key", PKI, name)
    assert cert_pub == key_pub


def test_sans_from_inventory(host, name):
    got = sans(host, name)
    assert f"DNS:{name}" in got
    if name == "pki-node1":
        assert {"DNS:flock.example.test", "IP Address:10.20.30.40"} <= got
        assert {"DNS:localhost", "IP Address:127.0.0.1"} <= got
    else:  # pki_include_localhost: false, no extra names
        assert got == {f"DNS:{name}"}


def test_certificates_differ_per_host(host, name):
    # Each host got its own certificate: the other host's name is not in its SANs.
    others = [n for n in ALL_NODES if n != name]
    got = sans(host, name)
    for other in others:
        assert f"DNS:{other}" not in got


def test_tls_handshake_between_hosts(host, name):
    """A TLS server on this host with its key/cert; the other host verifies it by name."""
    other = next(n for n in ALL_NODES if n != name)
    srv = host.run(
        "setsid timeout 30 openssl s_server -quiet -accept 8443 -cert %s/%s.crt -key %s/%s.key "
        ">/dev/null 2>&1 </dev/null & "
        "for i in $(seq 100); do ss -Hltn 'sport = :8443' | grep -q . && exit 0; sleep 0.1; done; "
        "exit 1",
        PKI,
        name,
        PKI,
        name,
    )
    assert srv.rc == 0, "openssl s_server did not start listening"
    # The peer is another container: run the client there via the ansible backend.
    peer = host.get_host(f"ansible://{other}", ansible_inventory=host.backend.ansible_inventory)
    cli = peer.run(
        "echo | openssl s_client -connect %s:8443 -servername %s -verify_hostname %s "
        "-CAfile %s/ca.crt -verify_return_error -brief",
        name,
        name,
        name,
        PKI,
    )
    assert cli.rc == 0, cli.stderr
    assert "Verification: OK" in cli.stderr + cli.stdout


BYO = "/etc/flock/pki-byo"


def test_byo_ca_is_installed_and_used(host, name):
    # side_effect: pki_ca_cert_path/pki_ca_key_path = an operator CA
    assert host.file(f"{BYO}/ca.crt").content == host.file("/root/operator-ca.crt").content
    cmd = host.run("openssl verify -CAfile /root/operator-ca.crt %s/%s.crt", BYO, name)
    assert cmd.rc == 0, cmd.stderr
    # the private CA did not sign it
    assert host.run("openssl verify -CAfile %s/ca.crt %s/%s.crt", PKI, BYO, name).rc != 0


def test_byo_host_certificate_copied_as_given(host, name):
    subject = host.check_output("openssl x509 -noout -subject -in %s/%s.crt", BYO, name)
    if name == "pki-node2":  # pki_cert_path/pki_key_path: the operator's own certificate
        assert "CN = gateway.example.test" in subject
    else:  # issued by the role with the operator's CA
        assert f"CN = {name}" in subject
    cert_pub = host.check_output("openssl x509 -noout -pubkey -in %s/%s.crt", BYO, name)
    key_pub = host.check_output("openssl pkey -pubout -in %s/%s.key", BYO, name)
    assert cert_pub == key_pub


def test_mismatched_pair_left_nothing_behind(host):
    assert not host.file("/etc/flock/pki-mismatch").exists
