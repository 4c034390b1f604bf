"""Gateway configuration: environment variables (FLOCK_*) over an optional TOML file.

Precedence: built-in defaults < TOML file (path in FLOCK_CONFIG, or passed explicitly)
< systemd credentials < environment. Secrets can be given inline or, preferably, as a path
to a file (``*_FILE`` / ``*_file``) so they never appear in a process listing or unit
file; or as systemd credentials (``LoadCredential=es_password:/root-only/file``), found
in ``$CREDENTIALS_DIRECTORY`` under the setting's name: ``es_password``, ``es_api_key``,
``enroll_secrets``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .indices import GRANULARITIES, shard_budget, shards_needed

MIB = 1024 * 1024

# osquery's TLS logger sends at most 1024 lines per request (logger_tls_max_lines); result
# lines are typically a few KiB. 20 MiB leaves room for ~20 KiB per line on a full batch
# while bounding the memory a single request can take in a worker.
DEFAULT_MAX_BODY_BYTES = 20 * MIB


class ConfigError(ValueError):
    """The configuration is invalid; the message says which setting and why."""


@dataclass(frozen=True)
class Config:
    es_hosts: tuple[str, ...] = ("http://127.0.0.1:9200",)
    es_ca_file: str | None = None
    es_verify_certs: bool = True
    es_username: str | None = None
    es_password: str | None = field(default=None, repr=False)
    es_api_key: str | None = field(default=None, repr=False)
    es_timeout: float = 10.0
    es_max_retries: int = 2
    index_prefix: str = "flock"
    retention_days: int = 90
    # disk budget of the daily indices (bytes, replicas included); 0: none
    retention_max_bytes: int = 0
    # shared bulks: rows of concurrent requests are sent to Elasticsearch together
    bulk_max_rows: int = 2000
    bulk_max_bytes: int = 8 * MIB
    bulk_linger_ms: float = 0.0
    bulk_concurrency: int = 1
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_decompressed_bytes: int = 64 * MIB
    # /register, /osquery/enroll and /osquery/config need a few KB
    max_small_body_bytes: int = 64 * 1024
    auth_cache_ttl: float = 10.0
    enroll_secrets: tuple[str, ...] = field(default=(), repr=False)
    register_requires_secret: bool = True
    log_level: str = "INFO"
    startup_check: bool = True
    # while storage is not ready, and for /readyz: seconds between a worker's probes
    readiness_interval: float = 2.0
    # osquery TLS API
    status_logs: str = "store"
    strict_allowlist: bool = False
    schedule_file: str | None = None
    public_url: str | None = None
    osquery_max_lines: int = 1024
    osquery_max_line_bytes: int = MIB
    max_rows_per_request: int = 20_000
    register_retry_seconds: float = 3600.0
    index_granularity: str = "day"
    data_nodes: int = 1
    max_shards_per_node: int = 1000
    refuse_reenroll_within_hours: float = 24.0

    @property
    def enrollment_required(self) -> bool:
        """Whether /register (Flock API) requires an enrollment secret."""
        return bool(self.enroll_secrets) and self.register_requires_secret

    def validate(self) -> None:
        if not self.es_hosts:
            raise ConfigError("es_hosts: at least one Elasticsearch URL is required")
        for host in self.es_hosts:
            if not host.startswith(("http://", "https://")):
                raise ConfigError(f"es_hosts: {host!r} must start with http:// or https://")
            if "@" in host.split("://", 1)[1].split("/", 1)[0]:
                raise ConfigError(
                    "es_hosts: put credentials in es_username/es_password(_file), not in the URL"
                )
        if self.es_password and not self.es_username:
            raise ConfigError("es_password is set but es_username is not")
        if self.es_api_key and self.es_username:
            raise ConfigError("set either es_username/es_password or es_api_key, not both")
        if self.es_ca_file and not Path(self.es_ca_file).is_file():
            raise ConfigError(f"es_ca_file: {self.es_ca_file} is not a readable file")
        if self.es_timeout <= 0:
            raise ConfigError("es_timeout must be > 0")
        if self.es_max_retries < 0:
            raise ConfigError("es_max_retries must be >= 0")
        if not self.index_prefix or not all(
            c.islower() or c.isdigit() or c in "-_" for c in self.index_prefix
        ):
            raise ConfigError("index_prefix: lowercase letters, digits, '-' and '_' only")
        if self.retention_days < 1:
            raise ConfigError("retention_days must be >= 1")
        if self.retention_max_bytes < 0:
            raise ConfigError("retention_max_bytes must be >= 0 (0: no disk budget)")
        if self.bulk_max_rows < 1 or self.bulk_max_bytes < 1024 or self.bulk_concurrency < 1:
            raise ConfigError(
                "bulk_max_rows and bulk_concurrency must be >= 1, bulk_max_bytes >= 1024"
            )
        if not 0 <= self.bulk_linger_ms <= 1000:
            raise ConfigError("bulk_linger_ms must be between 0 and 1000")
        if self.max_body_bytes < 1024:
            raise ConfigError("max_body_bytes must be >= 1024")
        if self.max_decompressed_bytes < self.max_body_bytes:
            raise ConfigError("max_decompressed_bytes must be >= max_body_bytes")
        if self.max_small_body_bytes < 1024:
            raise ConfigError("max_small_body_bytes must be >= 1024")
        if not 0 <= self.readiness_interval <= 300:
            raise ConfigError("readiness_interval must be between 0 and 300 seconds")
        if self.auth_cache_ttl < 0:
            raise ConfigError("auth_cache_ttl must be >= 0 (0 disables the cache)")
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ConfigError("log_level must be DEBUG, INFO, WARNING or ERROR")
        if self.status_logs not in {"store", "drop"}:
            raise ConfigError("status_logs must be 'store' or 'drop'")
        if self.osquery_max_lines < 1 or self.osquery_max_line_bytes < 1024:
            raise ConfigError("osquery_max_lines must be >= 1, osquery_max_line_bytes >= 1024")
        if self.max_rows_per_request < 1:
            raise ConfigError("max_rows_per_request must be >= 1")
        if self.index_granularity not in GRANULARITIES:
            raise ConfigError("index_granularity must be 'day', 'week' or 'month'")
        if self.data_nodes < 1 or self.max_shards_per_node < 1:
            raise ConfigError("data_nodes and max_shards_per_node must be >= 1")
        needed = shards_needed(self.retention_days, self.index_granularity, self.data_nodes)
        budget = shard_budget(self.max_shards_per_node, self.data_nodes)
        if needed > budget:
            coarser = [
                g
                for g in GRANULARITIES
                if shards_needed(self.retention_days, g, self.data_nodes) <= budget
            ]
            hint = f"; index_granularity = {coarser[0]!r} fits" if coarser else ""
            raise ConfigError(
                f"retention_days = {self.retention_days} with one index per"
                f" {self.index_granularity} needs up to {needed} shards, more than half of what"
                f" {self.data_nodes} data node(s) x max_shards_per_node ="
                f" {self.max_shards_per_node} allow ({budget}){hint}"
            )
        if self.register_retry_seconds < 0 or self.refuse_reenroll_within_hours < 0:
            raise ConfigError("register_retry_seconds, refuse_reenroll_within_hours must be >= 0")
        if self.public_url and not self.public_url.startswith("https://"):
            raise ConfigError("public_url must start with https:// (osquery only speaks TLS)")
        for secret in self.enroll_secrets:
            if len(secret) < 16:
                raise ConfigError("enroll secrets must be at least 16 characters long")


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _parse_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, list | tuple):
        items = [str(v).strip() for v in value]
    else:
        items = [part.strip() for part in str(value).split(",")]
    return tuple(item for item in items if item)


def _parse_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"not a string: {value!r}")
    return value


@dataclass(frozen=True)
class _Setting:
    attr: str
    section: str
    key: str
    parse: Callable[[Any], Any]
    secret_file: bool = False  # value is a path to a file holding the setting

    @property
    def env(self) -> str:
        """The environment variable: FLOCK_ and the attribute, _FILE for a secret's file."""
        return f"FLOCK_{self.attr.upper()}{'_FILE' if self.secret_file else ''}"


_SETTINGS: tuple[_Setting, ...] = (
    _Setting("es_hosts", "elasticsearch", "hosts", _parse_list),
    _Setting("es_ca_file", "elasticsearch", "ca_file", _parse_str),
    _Setting("es_verify_certs", "elasticsearch", "verify_certs", _parse_bool),
    _Setting("es_username", "elasticsearch", "username", _parse_str),
    _Setting("es_password", "elasticsearch", "password", _parse_str),
    _Setting("es_password", "elasticsearch", "password_file", _parse_str, secret_file=True),
    _Setting("es_api_key", "elasticsearch", "api_key", _parse_str),
    _Setting("es_api_key", "elasticsearch", "api_key_file", _parse_str, secret_file=True),
    _Setting("es_timeout", "elasticsearch", "timeout", float),
    _Setting("es_max_retries", "elasticsearch", "max_retries", int),
    _Setting("index_prefix", "storage", "index_prefix", _parse_str),
    _Setting("retention_days", "storage", "retention_days", int),
    _Setting("retention_max_bytes", "storage", "retention_max_bytes", int),
    _Setting("index_granularity", "storage", "index_granularity", _parse_str),
    _Setting("data_nodes", "storage", "data_nodes", int),
    _Setting("max_shards_per_node", "storage", "max_shards_per_node", int),
    _Setting("bulk_max_rows", "storage", "bulk_max_rows", int),
    _Setting("bulk_max_bytes", "storage", "bulk_max_bytes", int),
    _Setting("bulk_linger_ms", "storage", "bulk_linger_ms", float),
    _Setting("bulk_concurrency", "storage", "bulk_concurrency", int),
    _Setting("max_body_bytes", "gateway", "max_body_bytes", int),
    _Setting("max_decompressed_bytes", "gateway", "max_decompressed_bytes", int),
    _Setting("max_small_body_bytes", "gateway", "max_small_body_bytes", int),
    _Setting("max_rows_per_request", "gateway", "max_rows_per_request", int),
    _Setting("register_retry_seconds", "gateway", "register_retry_seconds", float),
    _Setting("refuse_reenroll_within_hours", "osquery", "refuse_reenroll_within_hours", float),
    _Setting("auth_cache_ttl", "gateway", "auth_cache_ttl", float),
    _Setting("enroll_secrets", "gateway", "enroll_secrets", _parse_list),
    _Setting("enroll_secrets", "gateway", "enroll_secrets_file", _parse_str, secret_file=True),
    _Setting("register_requires_secret", "gateway", "register_requires_secret", _parse_bool),
    _Setting("log_level", "gateway", "log_level", _parse_str),
    _Setting("startup_check", "gateway", "startup_check", _parse_bool),
    _Setting("readiness_interval", "gateway", "readiness_interval", float),
    _Setting("status_logs", "osquery", "status_logs", _parse_str),
    _Setting("strict_allowlist", "osquery", "strict_allowlist", _parse_bool),
    _Setting("schedule_file", "osquery", "schedule_file", _parse_str),
    _Setting("public_url", "osquery", "public_url", _parse_str),
    _Setting("osquery_max_lines", "osquery", "max_lines", int),
    _Setting("osquery_max_line_bytes", "osquery", "max_line_bytes", int),
)


def _read_secret_file(path: str, attr: str) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{attr}: cannot read secret file {path}: {exc.strerror}") from None
    if attr == "enroll_secrets":
        return tuple(
            line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
        )
    value = text.strip()
    if not value:
        raise ConfigError(f"{attr}: secret file {path} is empty")
    return value


def _apply(values: dict[str, Any], setting: _Setting, raw: Any, origin: str) -> None:
    try:
        parsed = setting.parse(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{origin}: {exc}") from None
    if setting.secret_file:
        parsed = _read_secret_file(parsed, setting.attr)
    elif setting.attr == "enroll_secrets":
        parsed = tuple(parsed)
    values[setting.attr] = parsed


def load_config(
    env: Mapping[str, str] | None = None, path: str | os.PathLike[str] | None = None
) -> Config:
    """Build a validated Config from a TOML file (optional) and the environment."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    file_path = path if path is not None else env.get("FLOCK_CONFIG") or None
    if file_path:
        try:
            with open(file_path, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {file_path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file_path} is not valid TOML: {exc}") from None
        known = {(s.section, s.key): s for s in _SETTINGS}
        for section, table in data.items():
            if not isinstance(table, dict):
                raise ConfigError(f"{file_path}: top-level key {section!r} must be a [table]")
            for key, raw in table.items():
                setting = known.get((section, key))
                if setting is None:
                    raise ConfigError(f"{file_path}: unknown setting [{section}] {key}")
                _apply(values, setting, raw, f"{file_path} [{section}] {key}")
    credentials = env.get("CREDENTIALS_DIRECTORY")
    if credentials:
        # systemd's LoadCredential=: a secret named after its setting (es_password, ...)
        for setting in _SETTINGS:
            path = Path(credentials, setting.attr)
            if setting.secret_file and path.is_file():
                _apply(values, setting, str(path), f"credential {setting.attr}")
    for setting in _SETTINGS:
        if setting.env in env and env[setting.env] != "":
            _apply(values, setting, env[setting.env], setting.env)
    allowed = {f.name for f in fields(Config)}
    cfg = Config(**{k: v for k, v in values.items() if k in allowed})
    cfg.validate()
    return cfg
