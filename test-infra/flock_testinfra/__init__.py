"""Test infrastructure shared by the gateway's tests, its benchmark and ``make dev``.

Installed (editable) into the controller's .venv by scripts/bootstrap.sh, so every user
imports it the same way: ``from flock_testinfra.esnode import start_node, node_url``.
"""
