# analytics.platform: the commands a newcomer needs. Everything they need is installed by the scripts they call.
#   make lab    set up this machine, build the three-zone lab and deploy the platform onto it (site.yml)
#   make test   the test suite CI runs (.ci/run): lint, unit tests, service integration tests, role scenarios
# More: make help
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV        ?= .venv
BIN         := $(VENV)/bin
ANSIBLE_ENV := ANSIBLE_CONFIG=$(CURDIR)/ansible.cfg PATH=$(CURDIR)/$(BIN):$$PATH
INVENTORY   ?= inventories/lab
# Role scenarios run by `make test` (fits the 45-minute budget on a fresh 2-core machine).
SCENARIOS   ?= default
# Heavier scenarios (whole platform, fault drills) run by `make test-heavy`.
HEAVY_SCENARIOS ?=

.PHONY: help host venv image artifacts setup lab lab-up lab-down site endpoints test lint unit integration \
        molecule test-heavy e2e audit clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

host: ## Install and start Docker, debootstrap and the apt cache on this machine
	@bash scripts/bootstrap-host.sh

venv: ## Create .venv with the pinned tool chain
	@bash scripts/venv.sh

image: host ## Build (or reuse) the Debian 12 systemd base image
	@bash scripts/build-image.sh

artifacts: venv ## Build Kafka, SeaweedFS and the service wheelhouse into artifacts/ with SHA256SUMS
	@bash scripts/build-artifacts.sh

setup: host venv image artifacts ## Everything the lab and the tests need on this machine

lab: setup lab-up site endpoints ## Set up this machine, create the three-zone lab and deploy the platform

lab-up: ## Create (or converge) the lab containers from the lab inventory
	@echo "==> Creating the lab from $(INVENTORY)"
	@$(ANSIBLE_ENV) ansible-playbook -i $(INVENTORY) lab/create.yml

lab-down: ## Remove the lab's containers, networks and routes
	@$(ANSIBLE_ENV) ansible-playbook -i $(INVENTORY) lab/destroy.yml

site: ## Deploy or converge the platform: ansible-playbook -i $(INVENTORY) site.yml
	@echo "==> ansible-playbook -i $(INVENTORY) site.yml"
	@$(ANSIBLE_ENV) ansible-playbook -i $(INVENTORY) site.yml

endpoints: ## Print the lab's endpoints
	@$(ANSIBLE_ENV) ansible-playbook -i $(INVENTORY) lab/endpoints.yml

test: setup lint unit integration molecule ## The test suite (what CI runs)
	@echo "==> make test: all stages passed"

lint: venv ## ansible-lint (production profile) and ruff
	@echo "==> ansible-lint (profile production)"
	@$(ANSIBLE_ENV) ansible-lint
	@echo "==> ruff"
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .

unit: venv ## Unit tests: plugins, modules and filters (plain Python)
	@echo "==> unit tests"
	@$(ANSIBLE_ENV) $(BIN)/pytest tests/unit

integration: setup ## Service tests against real Kafka, PostgreSQL and SeaweedFS started by the fixtures
	@bash scripts/test-apps.sh

molecule: setup ## Role scenarios: make molecule SCENARIOS="kafka postgresql"
	@for s in $(SCENARIOS); do \
	  echo "==> molecule test -s $$s"; \
	  $(ANSIBLE_ENV) $(BIN)/molecule test -s $$s || exit 1; \
	done

test-heavy: setup ## Whole-platform scenarios and fault drills (long; not part of make test)
	@for s in $(HEAVY_SCENARIOS); do \
	  echo "==> molecule test -s $$s"; \
	  $(ANSIBLE_ENV) $(BIN)/molecule test -s $$s || exit 1; \
	done

clean: lab-down ## Remove the lab and local build output (keeps the caches in ~/.cache/analytics-platform)
	rm -rf artifacts .cache reports
