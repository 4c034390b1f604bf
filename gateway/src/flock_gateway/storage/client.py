"""Elasticsearch client construction and the connectivity/credentials probe."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from elasticsearch import (
    ApiError,
    AuthenticationException,
    AuthorizationException,
    Elasticsearch,
    NotFoundError,
    TransportError,
)
from elasticsearch.serializer import OrjsonSerializer

from ..config import Config
from ..indices import DAILY_KINDS, IndexNames


class RawJsonAnswers(OrjsonSerializer):
    """Encodes as orjson does; hands JSON answers back as the bytes Elasticsearch sent."""

    def loads(self, data: bytes) -> Any:
        return data


def make_client(config: Config, *, raw_answers: bool = False) -> Elasticsearch:
    """The client for ``config``'s cluster. ``raw_answers``: JSON answers stay bytes (for
    the bulk sender, :mod:`.bulk_http`; the client's own API methods expect parsed ones)."""
    kwargs: dict[str, object] = {
        "request_timeout": config.es_timeout,
        "max_retries": config.es_max_retries,
        "retry_on_timeout": True,
        # orjson parses answers several times faster than the standard library
        "serializers": {
            "application/json": RawJsonAnswers() if raw_answers else OrjsonSerializer()
        },
    }
    if config.es_ca_file:
        kwargs["ca_certs"] = config.es_ca_file
    if any(h.startswith("https://") for h in config.es_hosts):
        kwargs["verify_certs"] = config.es_verify_certs
    if config.es_username:
        kwargs["basic_auth"] = (config.es_username, config.es_password or "")
    elif config.es_api_key:
        kwargs["api_key"] = config.es_api_key
    return Elasticsearch(list(config.es_hosts), **kwargs)  # type: ignore[arg-type]


# Why a probe failed, as a code a program can branch on (the CLI prints it as "reason").
READY = "ready"
NOT_SET_UP = "storage_not_set_up"
CREDENTIALS_REJECTED = "credentials_rejected"
ACCESS_DENIED = "access_denied"
STORAGE_ERROR = "storage_error"
UNREACHABLE = "storage_unreachable"
READ_ONLY = "storage_read_only"


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    message: str
    reason: str


def probe(client: Elasticsearch, config: Config, agents_index: str) -> ProbeResult:
    """Check that Elasticsearch answers, accepts our credentials and has our registry.

    Uses a document GET on the registry index, which the gateway's own (write-only)
    role may do; no cluster privileges are needed.
    """
    hosts = ", ".join(config.es_hosts)
    try:
        client.get(index=agents_index, id="__flock_probe__", source=False)
    except NotFoundError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        error = body.get("error")
        if isinstance(error, dict) and error.get("type") == "index_not_found_exception":
            return ProbeResult(
                False,
                f"Elasticsearch at {hosts} has no index {agents_index!r}: "
                "run `flock-gateway setup-storage` with admin credentials first",
                NOT_SET_UP,
            )
        return ProbeResult(True, f"Elasticsearch at {hosts} is reachable", READY)
    except AuthenticationException:
        return ProbeResult(
            False,
            f"Elasticsearch at {hosts} rejected the gateway's credentials (401): "
            "check es_username/es_password(_file) or es_api_key(_file)",
            CREDENTIALS_REJECTED,
        )
    except AuthorizationException:
        return ProbeResult(
            False,
            f"Elasticsearch at {hosts} denied access to {agents_index!r} (403): "
            "the gateway's role lacks privileges",
            ACCESS_DENIED,
        )
    except ApiError as exc:
        return ProbeResult(
            False, f"Elasticsearch at {hosts} answered HTTP {exc.meta.status}", STORAGE_ERROR
        )
    except TransportError as exc:
        return ProbeResult(
            False,
            f"cannot reach Elasticsearch at {hosts}: {type(exc).__name__}: {exc.message}",
            UNREACHABLE,
        )
    return ProbeResult(True, f"Elasticsearch at {hosts} is reachable", READY)


def read_only_indices(client: Elasticsearch, names: IndexNames) -> list[str] | None:
    """The gateway's indices Elasticsearch has made read-only because a node's disk is past
    its flood-stage watermark (``index.blocks.read_only_allow_delete``); None when these
    credentials may not read index settings (privilege ``view_index_metadata``) or
    Elasticsearch does not answer. The block goes by itself once disk usage is below the
    high watermark again."""
    pattern = ",".join([names.agents, *(names.daily_pattern(k) for k in DAILY_KINDS)])
    try:
        found = client.indices.get_settings(
            index=pattern,
            name="index.blocks.read_only_allow_delete",
            flat_settings=True,
            ignore_unavailable=True,
            allow_no_indices=True,
            expand_wildcards="open",
        )
    except (ApiError, TransportError):
        return None
    return sorted(
        index
        for index, body in found.body.items()
        if str(body.get("settings", {}).get("index.blocks.read_only_allow_delete")).lower()
        == "true"
    )


def disk_full_message(blocked: list[str]) -> str:
    return (
        f"Elasticsearch refuses writes: a node's disk is past its flood-stage watermark and "
        f"{len(blocked)} of the gateway's indices are read-only ({', '.join(blocked[:5])}"
        f"{', ...' if len(blocked) > 5 else ''}); free disk space (Elasticsearch lifts the "
        "block itself once usage is below the high watermark)"
    )
