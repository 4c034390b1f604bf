"""The pki role's name check, on the names an inventory gives it."""

from __future__ import annotations

import pytest

from roles.pki.filter_plugins import pki


@pytest.mark.parametrize(
    "name",
    ["es1", "es-1", "es1.example.org", "a" * 63, "*.example.org", "1node", "x" * 63 + ".org"],
)
def test_host_names_are_accepted(name):
    assert pki.dns_name_problem(name) == ""


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("es_1", "'_'"),
        ("ES1", "upper-case"),
        ("es1.Example.org", "upper-case"),
        ("es1.", "empty label"),
        (".es1", "empty label"),
        ("es1..example", "empty label"),
        ("a" * 64, "64 characters long (at most 63)"),
        ("-es1", "not letters, digits and '-'"),
        ("es1-", "not letters, digits and '-'"),
        ("es 1", "not letters, digits and '-'"),
        ("es1.*.org", "not letters, digits and '-'"),
        (".".join(["a" * 63] * 4), "255 characters long (at most 253)"),
        ("", "empty"),
    ],
)
def test_names_that_cannot_be_dns_names_say_why(name, reason):
    assert reason in pki.dns_name_problem(name)
