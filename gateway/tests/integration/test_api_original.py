"""The original flock-server's API tests (src/tests/test_api.py), ported.

One deliberate difference: the original refused a single JSON object on /submit, while
its own README sends exactly that (one object with ``host_uuid``). The gateway accepts both
shapes (gateway/README.md, "Submit results"), so that case expects 200 here (see
test_submit_list).
"""

import json

from .helpers import basic


def test_index_is_404(client):
    assert client.get("/").status_code == 404


def test_register_without_username(client):
    res = client.post("/register", data={})
    assert res.status_code == 400


def test_register_invalid_username(client):
    res = client.post("/register", data={"username": "usernames can't have spaces"})
    assert res.status_code == 400

    res = client.post("/register", data={"username": "they_can't_have_apostrophers_EITHER"})
    assert res.status_code == 400

    res = client.post("/register", data={"username": "but_they_can-have-dashes_and-underscores"})
    assert res.status_code == 200


def test_register_cannot_register_existing_username(client):
    res = client.post("/register", data={"username": "UUID1"})
    assert res.status_code == 200
    token = json.loads(res.data)["auth_token"]
    # once its credentials have been used, the name is taken for good
    assert client.get("/ping", headers=basic("UUID1", token)).status_code == 200

    res = client.post("/register", data={"username": "UUID1"})
    assert res.status_code == 400
    body = json.loads(res.data)
    assert body == {
        "error": True,
        "error_msg": "Your computer (UUID1) is already registered with this server",
    }


def test_register_with_name(client):
    res = client.post("/register", data={"username": "UUID1", "name": "Nick Fury"})
    assert res.status_code == 200


def test_ping_invalid_auth(client):
    res = client.get("/ping")
    assert res.status_code == 401


def test_ping_valid_auth(client):
    username = "UUID1"
    res = client.post("/register", data={"username": username})
    assert res.status_code == 200
    auth_token = json.loads(res.data)["auth_token"]

    res = client.get("/ping", headers=basic(username, auth_token))
    assert res.status_code == 200
    assert json.loads(res.data) == {"error": False}


def test_submit_invalid_auth(client):
    res = client.post("/submit", data="[{}]")
    assert res.status_code == 401


def test_submit_valid_auth(client):
    username = "UUID1"
    res = client.post("/register", data={"username": username})
    auth_token = json.loads(res.data)["auth_token"]

    res = client.post(
        "/submit",
        data=json.dumps([{"hostIdentifier": username}]),
        headers=basic(username, auth_token),
    )
    assert res.status_code == 200


def test_submit_valid_auth_with_invalid_host_identifier(client):
    username = "UUID42"
    res = client.post("/register", data={"username": username})
    auth_token = json.loads(res.data)["auth_token"]

    # the original server answered 400; here such a line is quarantined, never stored as
    # sent, so that it cannot hold back an agent that resends a refused request for ever
    res = client.post("/submit", data=json.dumps([{}]), headers=basic(username, auth_token))
    assert res.status_code == 200
    assert json.loads(res.data)["quarantined_count"] == 1

    res = client.post(
        "/submit",
        data=json.dumps([{"hostIdentifier": "something_wrong"}]),
        headers=basic(username, auth_token),
    )
    assert res.status_code == 200
    assert json.loads(res.data)["quarantined_count"] == 1


def test_submit_list(client):
    username = "UUID4444"
    res = client.post("/register", data={"username": username})
    assert res.status_code == 200
    auth_token = json.loads(res.data)["auth_token"]

    def submit(data):
        return client.post("/submit", data=json.dumps(data), headers=basic(username, auth_token))

    # Submit a log object, not a list of log objects: the original README's shape,
    # accepted here (the original server answered 400).
    res = submit({"hostIdentifier": username})
    assert res.status_code == 200
    assert json.loads(res.data)["processed_count"] == 1

    # Submit 1 log object
    res = submit([{"hostIdentifier": username}])
    assert res.status_code == 200
    assert json.loads(res.data)["processed_count"] == 1

    # Submit 3 log objects, one of them invalid (the original server answered 400): the
    # other two are stored as sent
    res = submit(
        [
            {"hostIdentifier": username},
            {"hostIdentifier": "invalid_username"},
            {"hostIdentifier": username},
        ]
    )
    assert res.status_code == 200
    assert json.loads(res.data)["quarantined_count"] == 1
    assert json.loads(res.data)["stored_count"] == 3

    # Submit 3 log objects
    res = submit(
        [
            {"hostIdentifier": username},
            {"hostIdentifier": username},
            {"hostIdentifier": username},
        ]
    )
    assert res.status_code == 200
    assert json.loads(res.data)["processed_count"] == 3


def test_readme_examples(client, es, prefix):
    """The README's two requests, as curl sends them (form-encoded, then one object)."""
    res = client.post(
        "/register",
        data="username=insert_endpoint_uuid_here",
        content_type="application/x-www-form-urlencoded",
    )
    assert res.status_code == 200
    body = json.loads(res.data)
    assert body["error"] is False
    assert len(body["auth_token"]) == 32
    token = body["auth_token"]

    res = client.post(
        "/submit",
        data='{"host_uuid": "insert_endpoint_uuid_here", "other_arbitrary_data": "goes here"}',
        headers={**basic("insert_endpoint_uuid_here", token), "Content-Type": "application/json"},
    )
    assert res.status_code == 200
    assert json.loads(res.data)["error"] is False

    from .helpers import stored

    (hit,) = stored(es, prefix)
    src = hit["_source"]
    assert src["data"] == {
        "host_uuid": "insert_endpoint_uuid_here",
        "other_arbitrary_data": "goes here",
    }
    assert src["flock"]["username"] == "insert_endpoint_uuid_here"
    assert src["flock"]["source"] == "flock-agent"
    assert "@timestamp" in src
