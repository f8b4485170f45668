# taskscheduler.ops: the two commands a newcomer needs are `make demo` and `make test` (see README.md).
# Both are idempotent and do their own set-up: Python toolchain here (scripts/setup-venv.sh), Docker and the
# lab in lab/lab.mk (owned by the lab; defines docker, lab-images, lab-up, lab-down, lab-wipe, lab-status).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

VENV := .venv
VENV_STAMP := $(VENV)/.requirements.sha256
# git-ignored symlink -> repository root, made by scripts/setup-venv.sh; ansible.cfg puts ./collections on
# collections_path, so ansible-playbook, ansible-doc, ansible-lint and molecule use the collection in place.
COLLECTION_LINK := collections/ansible_collections/taskscheduler/ops

# Every recipe uses the project's virtualenv without having to activate it.
export VIRTUAL_ENV := $(CURDIR)/$(VENV)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export GATE_LOG := $(CURDIR)/tests/output/gates.log

GATE := scripts/gate.sh
# Extra pytest options: PYTEST_ARGS for both pytest gates, UNIT_ARGS / INTEGRATION_ARGS for one of them,
# e.g. make test INTEGRATION_ARGS='-k "not fresh_lab"'.
PYTEST_ARGS ?=
UNIT_ARGS ?= $(PYTEST_ARGS)
INTEGRATION_ARGS ?= $(PYTEST_ARGS)
# concise: one line per finding in the gate; `ruff check .` shows each with context and the fix.
RUFF_FORMAT ?= concise

include lab/lab.mk

.PHONY: help venv lint ruff ansible-lint sanity unit integration test demo clean distclean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# --- Python toolchain -------------------------------------------------------------------------------------

# Re-runs the set-up only when a requirements file or the script changed (the script itself also compares a
# hash, so a touched-but-identical file costs a second).
$(VENV_STAMP): requirements.txt requirements-dev.txt scripts/setup-venv.sh
	@scripts/setup-venv.sh

$(COLLECTION_LINK):
	@scripts/setup-venv.sh

venv: ## Create/refresh .venv from requirements*.txt and link the collection in place
	@scripts/setup-venv.sh

# --- gates --------------------------------------------------------------------------------------------------

# Both linters run even when the first one fails, so one pass shows every finding.
lint: $(VENV_STAMP) | $(COLLECTION_LINK) ## ansible-lint (production profile), ruff and the changelog fragments
	@rc=0; $(MAKE) ansible-lint || rc=1; $(MAKE) ruff || rc=1; antsibull-changelog lint || rc=1; exit $$rc

ansible-lint: $(VENV_STAMP) | $(COLLECTION_LINK)
	ansible-lint

ruff: $(VENV_STAMP)
	ruff check --output-format $(RUFF_FORMAT) .

# ansible-test insists on running inside .../ansible_collections/<namespace>/<name>, and it finds that path with
# os.getcwd(), which resolves symlinks: cd-ing into $(COLLECTION_LINK) still yields the real repository path,
# and it refuses to run. ANSIBLE_TEST_CONTENT_ROOT (read in ansible_test/_internal/data.py; ansible-test sets it
# itself when it delegates) names the content root explicitly, so it sees the collection at the symlinked path,
# with no copy, no bind mount and no root privileges. Results land in tests/output/ (git-ignored).
#  * offline: scripts/ansible-test-offline/install.sh puts a stand-in get-pip script plus a pip wheel into
#    ~/.ansible/test/cache/, where ansible-test looks before downloading get-pip from a host we cannot reach; the
#    sanity tools themselves (pylint, yamllint, ...) come from the package index into ansible-test's own venvs.
#  * --python: only the venv's interpreter (the controller Python); target-only versions are not installed here.
#  * no --requirements: the controller's requirements are already in .venv (requirements*.txt).
#  * --exclude lab/: the lab is a Docker Compose application, not collection content; ruff lints it.
#  * shellcheck (Debian package) is installed if missing, so the shellcheck test runs instead of being skipped.
sanity: $(VENV_STAMP) | $(COLLECTION_LINK) ## ansible-test sanity on the collection (offline, in place)
	@scripts/ensure-debian-tools.sh shellcheck=shellcheck
	@scripts/ansible-test-offline/install.sh $(VENV)/bin/python
	cd $(COLLECTION_LINK) && ANSIBLE_TEST_CONTENT_ROOT="$(CURDIR)/$(COLLECTION_LINK)" \
		ansible-test sanity --python "$$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
		--exclude lab/ --color no

# Unit tests: no tests is only acceptable while plugins/ has no Python code.
unit: $(VENV_STAMP) | $(COLLECTION_LINK) ## pytest tests/unit
	@scripts/run-pytest.sh --allow-empty plugins tests/unit $(UNIT_ARGS)

# Integration tests run against the lab, which lab-up builds and starts (idempotent).
# Java 17 runs ansible-rulebook's rule engine (tests/integration/test_eda_source_rulebook.py).
integration: $(VENV_STAMP) lab-up | $(COLLECTION_LINK) ## lab-up, then pytest tests/integration
	@scripts/ensure-debian-tools.sh java=openjdk-17-jre-headless
	@scripts/run-pytest.sh --require-tests tests/integration $(INTEGRATION_ARGS)

# The whole suite, gate by gate, stopping at the first failure; each gate prints a banner and its wall time,
# and a summary of the gates that ran is printed at the end (also after a failure).
test: ## The whole suite: venv, lint, sanity, unit, integration (fails fast)
	@rm -f "$(GATE_LOG)"
	@trap '$(GATE) --summary' EXIT; \
	$(GATE) venv $(MAKE) venv && \
	$(GATE) lint $(MAKE) lint && \
	$(GATE) sanity $(MAKE) sanity && \
	$(GATE) unit $(MAKE) unit && \
	$(GATE) integration $(MAKE) integration

# --- demo ---------------------------------------------------------------------------------------------------

demo: ## Bring the lab up (if needed) and run the health check against it
	@$(MAKE) venv
	@$(MAKE) lab-up
	@test -f playbooks/health_check.yml || { echo "demo: playbooks/health_check.yml does not exist yet"; exit 1; }
	ansible-playbook playbooks/health_check.yml -i lab/inventory.yml

# --- housekeeping -------------------------------------------------------------------------------------------

clean: ## Remove test output, caches and the collection link (keeps .venv and the lab)
	rm -rf tests/output collections build .pytest_cache .ruff_cache
	find . -path ./.venv -prune -o -path ./lab/.state -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -f taskscheduler-ops-*.tar.gz

distclean: clean ## clean, and remove .venv too (the lab is removed with make lab-wipe)
	rm -rf $(VENV)
