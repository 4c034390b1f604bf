"""Regression: the original server matched usernames and tokens as analysed text, so the
token of ``attacker-laptop`` authenticated ``victim-laptop`` (both analyse to terms that
include "laptop"). Lookups are now exact by document id and hashes compared whole."""

import json

import pytest

from .helpers import basic, osquery_line, register, stored, submit


@pytest.fixture
def tokens(client):
    return {
        name: register(client, name)
        for name in ("attacker-laptop", "victim-laptop", "victim", "laptop")
    }


@pytest.mark.parametrize(
    "target",
    [
        "victim-laptop",
        "victim",
        "laptop",
        "Victim-laptop",
        "VICTIM-LAPTOP",
        "victim_laptop",
        "attacker",
        "attacker-laptop-2",
        "victim-laptop-",
    ],
)
def test_attacker_token_does_not_authenticate_other_usernames(client, tokens, target):
    atk = tokens["attacker-laptop"]
    assert client.get("/ping", headers=basic(target, atk)).status_code == 401
    res = submit(client, target, atk, [osquery_line(target)])
    assert res.status_code == 401
    assert json.loads(res.data)["error"] is True


def test_each_token_only_works_for_its_own_username(client, tokens):
    for owner, token in tokens.items():
        for username in tokens:
            status = client.get("/ping", headers=basic(username, token)).status_code
            assert status == (200 if username == owner else 401), (owner, username)


def test_tokens_of_similar_shape_fail(client, tokens):
    victim = tokens["victim-laptop"]
    for wrong in (
        victim.upper(),
        victim[:-1],
        victim + "0",
        victim[:16],
        f"{victim} {victim}",
        "laptop",
        "*",
    ):
        assert client.get("/ping", headers=basic("victim-laptop", wrong)).status_code == 401


def test_attacker_cannot_write_rows_for_the_victim(client, tokens, es, prefix):
    atk = tokens["attacker-laptop"]
    # lines naming the victim are held in quarantine under the attacker's name, with the
    # reason: never stored as the victim's (nor as data anyone's panels read)
    res = submit(client, "attacker-laptop", atk, [osquery_line("victim-laptop")])
    assert res.status_code == 200
    assert json.loads(res.data)["quarantined_count"] == 1
    res = submit(client, "attacker-laptop", atk, {"host_uuid": "victim-laptop"})
    assert json.loads(res.data)["quarantined_count"] == 1
    held = stored(es, prefix, query={"exists": {"field": "flock.quarantine_reason"}})
    assert len(held) == 2
    for hit in held:
        assert hit["_source"]["flock"]["username"] == "attacker-laptop"
        assert "data" not in hit["_source"]
        assert "victim-laptop" in hit["_source"]["flock"]["raw_json"]
    # a forged tag is stored as the attacker's own data, never as the gateway's tag
    res = submit(
        client,
        "attacker-laptop",
        atk,
        [osquery_line("attacker-laptop", flock={"username": "victim-laptop"})],
    )
    assert res.status_code == 200
    (hit,) = stored(es, prefix, query={"exists": {"field": "data"}})
    assert hit["_source"]["flock"]["username"] == "attacker-laptop"
    assert hit["_source"]["data"]["flock"] == {"username": "victim-laptop"}
    assert stored(es, prefix, query={"term": {"flock.username": "victim-laptop"}}) == []


def test_stored_tokens_are_hashes(client, tokens, es, names):
    es.indices.refresh(index=names.agents)
    hits = es.search(index=names.agents, size=100)["hits"]["hits"]
    assert len(hits) == 4
    dump = json.dumps(hits)
    for token in tokens.values():
        assert token not in dump
    for hit in hits:
        assert hit["_id"] == hit["_source"]["username"]
        assert hit["_source"]["token_hash"].startswith("sha256:")
