import pytest

from flock_gateway.config import DEFAULT_MAX_BODY_BYTES, Config, ConfigError, load_config


def test_defaults():
    cfg = load_config(env={})
    assert cfg == Config()
    assert cfg.retention_days == 90
    assert cfg.max_body_bytes == DEFAULT_MAX_BODY_BYTES
    assert not cfg.enrollment_required


def test_env(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    secrets = tmp_path / "enroll"
    secrets.write_text("# current\n" + "a" * 20 + "\n\n" + "b" * 20 + "\n")
    cfg = load_config(
        env={
            "FLOCK_ES_HOSTS": "https://es1:9200, https://es2:9200",
            "FLOCK_ES_USERNAME": "flock_gateway",
            "FLOCK_ES_PASSWORD_FILE": str(pw),
            "FLOCK_RETENTION_DAYS": "30",
            "FLOCK_AUTH_CACHE_TTL": "2.5",
            "FLOCK_MAX_BODY_BYTES": "1048576",
            "FLOCK_ENROLL_SECRETS_FILE": str(secrets),
            "FLOCK_ES_VERIFY_CERTS": "yes",
        }
    )
    assert cfg.es_hosts == ("https://es1:9200", "https://es2:9200")
    assert cfg.es_password == "s3cret"
    assert cfg.retention_days == 30
    assert cfg.auth_cache_ttl == 2.5
    assert cfg.enroll_secrets == ("a" * 20, "b" * 20)
    assert cfg.enrollment_required
    assert "s3cret" not in repr(cfg)
    assert "a" * 20 not in repr(cfg)


def test_systemd_credentials(tmp_path):
    """LoadCredential=es_password:... : the secret in $CREDENTIALS_DIRECTORY, named after
    its setting, over the file's; the environment still wins."""
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "es_password").write_text("from-systemd\n")
    path = tmp_path / "prune.toml"
    path.write_text('[elasticsearch]\nusername = "flock_retention"\npassword = "from-file"\n')
    env = {"FLOCK_CONFIG": str(path), "CREDENTIALS_DIRECTORY": str(creds)}
    assert load_config(env=env).es_password == "from-systemd"
    assert load_config(env={**env, "FLOCK_ES_PASSWORD": "from-env"}).es_password == "from-env"
    assert load_config(env={"FLOCK_CONFIG": str(path)}).es_password == "from-file"
    (creds / "es_password").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        load_config(env=env)


def test_toml_file_and_env_precedence(tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    path = tmp_path / "gateway.toml"
    path.write_text(
        f"""
[elasticsearch]
hosts = ["https://es1:9200"]
ca_file = "{ca}"
api_key = "abc"

[storage]
retention_days = 14
index_prefix = "flock"

[gateway]
max_body_bytes = 2097152
enroll_secrets = ["{"x" * 16}"]
"""
    )
    cfg = load_config(env={"FLOCK_CONFIG": str(path), "FLOCK_RETENTION_DAYS": "7"})
    assert cfg.es_hosts == ("https://es1:9200",)
    assert cfg.es_ca_file == str(ca)
    assert cfg.es_api_key == "abc"
    assert cfg.retention_days == 7  # env wins
    assert cfg.max_body_bytes == 2097152
    assert cfg.enroll_secrets == ("x" * 16,)


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"FLOCK_ES_HOSTS": "es1:9200"}, "http"),
        ({"FLOCK_ES_HOSTS": "https://user:pw@es1:9200"}, "credentials"),
        ({"FLOCK_RETENTION_DAYS": "0"}, "retention_days"),
        ({"FLOCK_RETENTION_DAYS": "ninety"}, "FLOCK_RETENTION_DAYS"),
        ({"FLOCK_ES_VERIFY_CERTS": "maybe"}, "boolean"),
        ({"FLOCK_ES_CA_FILE": "/nonexistent/ca.crt"}, "es_ca_file"),
        ({"FLOCK_ES_PASSWORD_FILE": "/nonexistent/pw"}, "cannot read"),
        ({"FLOCK_ES_PASSWORD": "x"}, "es_username"),
        ({"FLOCK_ENROLL_SECRETS": "short"}, "16"),
        ({"FLOCK_INDEX_PREFIX": "Flock"}, "index_prefix"),
        ({"FLOCK_STATUS_LOGS": "keep"}, "status_logs"),
        ({"FLOCK_AUTH_CACHE_TTL": "-1"}, "auth_cache_ttl"),
        ({"FLOCK_BULK_MAX_ROWS": "0"}, "bulk_max_rows"),
        ({"FLOCK_BULK_MAX_BYTES": "100"}, "bulk_max_bytes"),
        ({"FLOCK_BULK_CONCURRENCY": "0"}, "bulk_concurrency"),
        ({"FLOCK_BULK_LINGER_MS": "5000"}, "bulk_linger_ms"),
        ({"FLOCK_CONFIG": "/nonexistent.toml"}, "cannot read"),
        ({"FLOCK_READINESS_INTERVAL": "-1"}, "readiness_interval"),
    ],
)
def test_invalid(env, match):
    with pytest.raises(ConfigError, match=match):
        load_config(env=env)


def test_unknown_file_key(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text("[gateway]\nretention = 5\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_config(env={}, path=path)
    path.write_text("not = [toml")
    with pytest.raises(ConfigError, match="TOML"):
        load_config(env={}, path=path)


def test_shared_bulk_settings(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text("[storage]\nbulk_max_rows = 500\nbulk_linger_ms = 2.5\n")
    cfg = load_config(env={"FLOCK_CONFIG": str(path), "FLOCK_BULK_CONCURRENCY": "2"})
    assert (cfg.bulk_max_rows, cfg.bulk_linger_ms, cfg.bulk_concurrency) == (500, 2.5, 2)


@pytest.mark.parametrize(
    ("retention", "granularity", "nodes", "ok"),
    [
        (90, "day", 1, True),
        (365, "day", 1, False),  # over 1,000 shards on one node
        (365, "week", 1, True),
        (3650, "month", 1, True),
        (365, "day", 3, False),
        (365, "week", 3, True),
    ],
)
def test_shard_budget_is_checked_at_startup(retention, granularity, nodes, ok):
    cfg = Config(retention_days=retention, index_granularity=granularity, data_nodes=nodes)
    if ok:
        cfg.validate()
    else:
        with pytest.raises(ConfigError, match="shards") as exc:
            cfg.validate()
        assert "index_granularity = 'week' fits" in str(exc.value)


def test_index_granularity_is_one_of_three():
    with pytest.raises(ConfigError, match="index_granularity"):
        Config(index_granularity="hour").validate()
