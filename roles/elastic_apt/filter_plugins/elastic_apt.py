"""Filters of the elastic_apt role."""

from __future__ import annotations

from typing import Any


def primary_fingerprints(colons: str) -> list[str]:
    """The primary keys' fingerprints in ``gpg --with-colons --show-keys`` output, in file
    order. A subkey's fingerprint (the ``fpr`` record after a ``sub`` record) is not one:
    a key file is accepted only when this list is exactly the pinned fingerprint, so a file
    that carries another key beside Elastic's never reaches the keyring."""
    fingerprints = []
    after_primary = False
    for line in colons.splitlines():
        fields = line.split(":")
        if fields[0] == "pub":
            after_primary = True
        elif fields[0] == "sub":
            after_primary = False
        elif fields[0] == "fpr" and after_primary and len(fields) > 9:
            fingerprints.append(fields[9].upper())
            after_primary = False
    return fingerprints


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"elastic_apt_primary_fingerprints": primary_fingerprints}
