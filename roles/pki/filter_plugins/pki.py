"""Filters of the pki role: which names a host certificate can carry."""

from __future__ import annotations

import re
from typing import Any

# One label of a host name (RFC 1123), in lower case.
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
MAX_NAME = 253
MAX_LABEL = 63


def dns_name_problem(name: str) -> str:
    """Why ``name`` cannot be a certificate's DNS name, or ``""`` when it can.

    Lower case only: Elasticsearch's transport trust (``trust.subject_name``) compares the
    certificate's names with the inventory names as written. A leading ``*`` label (a
    wildcard extra name) is allowed.
    """
    if not name:
        return "it is empty"
    if len(name) > MAX_NAME:
        return f"it is {len(name)} characters long (at most {MAX_NAME})"
    if name != name.lower():
        return "it has upper-case letters (use the lower-case name)"
    labels = name.split(".")
    if labels[0] == "*" and len(labels) > 1:
        labels = labels[1:]
    for label in labels:
        if not label:
            return "it has an empty label (a leading, trailing or doubled dot)"
        if len(label) > MAX_LABEL:
            return (
                f"its label '{label[:16]}...' is {len(label)} characters long (at most {MAX_LABEL})"
            )
        if "_" in label:
            return f"its label '{label}' has '_', which host names cannot have (use '-')"
        if not _LABEL.match(label):
            return (
                f"its label '{label}' is not letters, digits and '-' "
                "(not starting or ending with '-')"
            )
    return ""


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"pki_dns_name_problem": dns_name_problem}
