import json

import pytest

from flock_gateway.api.osquery import osquery_username
from flock_gateway.auth import USERNAME_RE, reserved_for_osquery
from flock_gateway.config import ConfigError, load_config
from flock_gateway.metrics import Metrics
from flock_gateway.osquery_flags import flags_file
from flock_gateway.schedule import PRIVACY_OPTIONS, ScheduleError, load_schedule


def test_packaged_schedule_is_valid_and_served_with_privacy_options():
    schedule = load_schedule()
    assert len(schedule.names) >= 10
    cfg = schedule.osquery_config()
    assert cfg["schedule"] == schedule.queries
    for key, value in PRIVACY_OPTIONS.items():
        assert cfg["options"][key] == value
    assert cfg["options"]["disable_distributed"] is True
    for query in schedule.queries.values():
        assert query["interval"] >= 1
        assert query["description"]


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "{}",
        '{"schedule": {}}',
        '{"schedule": {"a": {"interval": 10}}}',
        '{"schedule": {"a": {"query": "SELECT 1;", "interval": "10"}}}',
    ],
)
def test_bad_schedules(tmp_path, content):
    path = tmp_path / "s.json"
    path.write_text(content)
    with pytest.raises(ScheduleError):
        load_schedule(str(path))


def test_osquery_username():
    uuid = "9A8B7C6D-5E4F-3A2B-1C0D-E9F8A7B6C5D4"
    assert osquery_username(uuid) == "osq-" + uuid
    name = osquery_username("mbp.example.org")
    assert name.startswith("osq-mbp-example-org-")
    assert name != osquery_username("mbp-example.org")  # no collisions through sanitising
    assert osquery_username("x" * 200).startswith("osq-")
    assert len(osquery_username("é" * 200)) <= 128
    # every osquery name is one /register refuses
    for identifier in (uuid, "mbp.example.org", "x" * 126, "OSQ-x", "é"):
        assert reserved_for_osquery(osquery_username(identifier))
        assert USERNAME_RE.fullmatch(osquery_username(identifier))


def test_metrics_render():
    m = Metrics()
    m.inc("flock_rows_refused_total", 3, api="osquery", reason="not_in_schedule")
    m.inc("flock_rows_refused_total", 0, api="flock", reason="not_in_schedule")
    m.inc("flock_rows_stored_total", 5, api="flock")
    text = m.render()
    assert "# TYPE flock_rows_refused_total counter" in text
    assert 'flock_rows_refused_total{api="osquery",reason="not_in_schedule",pid="' in text
    assert 'api="flock",reason' not in text
    assert m.get("flock_rows_stored_total", api="flock") == 5


def test_flags_file():
    text = flags_file("https://flock.example.org/gw/", "/ca.pem", "/secret")
    assert "--tls_hostname=flock.example.org\n" in text
    assert "--enroll_tls_endpoint=/gw/osquery/enroll\n" in text
    assert "--disable_distributed=true\n" in text
    with pytest.raises(ValueError, match="https"):
        flags_file("http://flock.example.org", "/ca.pem", "/secret")


def test_flags_file_and_served_config_switch_off_the_same_things():
    text = flags_file("https://flock.example.org", "/ca.pem", "/secret")
    flags = dict(line[2:].partition("=")[::2] for line in text.splitlines() if "=" in line)
    served = load_schedule().osquery_config()["options"]
    for flag in ("disable_distributed", "disable_carver", "carver_disable_function"):
        assert flags[flag] == "true"
        assert served[flag] is True


def test_osquery_settings():
    cfg = load_config(
        env={
            "FLOCK_STATUS_LOGS": "drop",
            "FLOCK_STRICT_ALLOWLIST": "true",
            "FLOCK_PUBLIC_URL": "https://flock.example.org",
            "FLOCK_OSQUERY_MAX_LINES": "2048",
            "FLOCK_REGISTER_REQUIRES_SECRET": "false",
            "FLOCK_ENROLL_SECRETS": "a" * 16,
        }
    )
    assert cfg.status_logs == "drop"
    assert cfg.strict_allowlist
    assert cfg.osquery_max_lines == 2048
    assert not cfg.enrollment_required  # osquery enrollment still needs the secret
    with pytest.raises(ConfigError, match="public_url"):
        load_config(env={"FLOCK_PUBLIC_URL": "http://x"})
    assert json.dumps(PRIVACY_OPTIONS)
