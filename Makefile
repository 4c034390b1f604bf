# The README's commands. Each script says which step it is on.
.PHONY: demo test teardown dev lint help

help:
	@echo "make demo      deploy the whole stack onto local containers (inventory/local)"
	@echo "make demo ELASTIC=packages   the same with Elastic's real packages (needs Elastic's APT repository)"
	@echo "make test      lint, gateway tests, dashboards test, every Molecule scenario"
	@echo "make teardown  remove the demo containers and their state"
	@echo "make dev       test Elasticsearch node + gateway on http://127.0.0.1:5000"
	@echo "make lint      ruff, yamllint, ansible-lint"

# ELASTIC=offline (default): the Maven-built node with x-pack security and the Kibana
# stand-in; packages: Elastic's debs (Elasticsearch and Kibana) from Elastic's APT repository.
ELASTIC ?= offline
demo:
	ELASTIC=$(ELASTIC) scripts/demo.sh up

teardown:
	scripts/demo.sh down

test:
	scripts/test.sh

dev:
	scripts/bootstrap.sh
	.venv/bin/python gateway/scripts/dev.py

lint:
	scripts/bootstrap.sh
	scripts/lint.sh
