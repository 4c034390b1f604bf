"""Optional enrollment secret for /register, so strangers cannot register."""

import json

from flock_gateway.app import create_app
from flock_gateway.config import Config

SECRET = "s3cret-enrollment-value-0123456789"


def test_register_requires_a_secret_when_configured(es_url, prefix, storage):
    client = create_app(
        Config(es_hosts=(es_url,), index_prefix=prefix, enroll_secrets=("x" * 20, SECRET))
    ).test_client()
    for kwargs in (
        {"json": {"username": "h1"}},
        {"json": {"username": "h1", "enroll_secret": "wrong-secret-0123456789"}},
        {"json": {"username": "h1", "enroll_secret": 5}},
        {"data": {"username": "h1"}},
        {"json": {"username": "h1"}, "headers": {"X-Flock-Enroll-Secret": SECRET[:-1]}},
    ):
        res = client.post("/register", **kwargs)
        assert res.status_code == 401
        assert json.loads(res.data) == {
            "error": True,
            "error_msg": "Registration requires a valid enrollment secret",
        }
    ok = [
        {"json": {"username": "h1", "enroll_secret": SECRET}},
        {"data": {"username": "h2", "enroll_secret": SECRET}},
        {"json": {"username": "h3"}, "headers": {"X-Flock-Enroll-Secret": SECRET}},
        {"json": {"username": "h4", "enroll_secret": "x" * 20}},
    ]
    for kwargs in ok:
        res = client.post("/register", **kwargs)
        assert res.status_code == 200, res.data
        assert json.loads(res.data)["auth_token"]


def test_register_can_stay_open_for_unmodified_agents(es_url, prefix, storage):
    cfg = Config(
        es_hosts=(es_url,),
        index_prefix=prefix,
        enroll_secrets=(SECRET,),
        register_requires_secret=False,
    )
    client = create_app(cfg).test_client()
    assert client.post("/register", json={"username": "h1"}).status_code == 200
