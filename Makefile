# FleetPatch developer commands. `make run` and `make test` are all a newcomer needs (see README.md).

# Any Python 3.11+; python3.11 is preferred when both exist. Override with `make PYTHON=/path/to/python3`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
VENV_PYTHON := $(VENV)/bin/python
PIP := $(VENV_PYTHON) -m pip --disable-pip-version-check --quiet
# One stamp per dependency set: re-installs when pyproject.toml is newer than the last install.
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

PORT ?= 8000
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help run test lint format clean reset

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(VENV_PYTHON):
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is needed (python3.11 or python3 on PATH)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

# The test install is a superset of the run install: after `make test`, `make run` need not reinstall.
$(RUN_STAMP): pyproject.toml | $(VENV_PYTHON)
	@if [ $(TEST_STAMP) -nt pyproject.toml ]; then :; else echo "$(PIP) install -e ."; $(PIP) install -e .; fi
	@touch $@

$(TEST_STAMP): pyproject.toml | $(VENV_PYTHON)
	$(PIP) install -e '.[test]'
	@touch $@

# DEBUG=true: the development server and no SECRET_KEY needed. DATABASE_URL, CELERY_BROKER_URL and
# EMAIL_URL are left as they are, so the embedded defaults apply unless you set them.
run: export DEBUG = true
run: $(RUN_STAMP) ## migrate, seed a demo fleet on first run, print the admin login, serve web + Celery
	$(VENV_PYTHON) scripts/run.py --port $(PORT)

test: $(TEST_STAMP) ## run the test suite (extra pytest arguments: make test ARGS='-k admin -x')
	$(VENV_PYTHON) -m pytest $(ARGS)

lint: $(TEST_STAMP) ## ruff check and ruff format --check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(TEST_STAMP) ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean: ## remove the virtualenv and caches (keeps var/: your local database, mail and admin password)
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info build
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

reset: ## delete var/ (local database, queued tasks, sent mail, admin password): next run starts afresh
	rm -rf var
