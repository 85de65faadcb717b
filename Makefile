# The two commands of the README: `make run` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Seconds `make run` waits for its processes to stop on Ctrl-C before it kills them.
STOP_TIMEOUT ?= 60
export HOST PORT

.PHONY: install check-port run test lint migrate clean lock lock-check

# kubernetes-validate (tests/test_deploy_manifests.py) lives apart, in $(VENV)/manifest-tools,
# which only that test puts on its path: installed in the venv, it would be imported by every
# `import kubernetes` (the client's dynamic module looks for it) and add 3 s to each start.
MANIFEST_TOOLS = 'kubernetes-validate>=1.33,<2' 'importlib-resources>=6,<7'

$(BIN)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps --upgrade --target $(VENV)/manifest-tools $(MANIFEST_TOOLS)
	@touch $@

install: $(BIN)/.installed

# requirements.lock: pyproject.toml's runtime dependencies (not the dev extra) pinned with
# hashes, for Linux amd64 and arm64 alike (--universal); the image installs from it. uv keeps
# the pins already in the output file, so an unchanged pyproject.toml gives an unchanged lock.
LOCK_COMPILE = $(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 \
	--generate-hashes --custom-compile-command "make lock" --quiet --no-progress

lock: install
	$(LOCK_COMPILE) -o requirements.lock

# CI (needs PyPI): regenerates the lock in a temporary copy and fails if it differs.
lock-check: install
	@test -f requirements.lock || { echo "requirements.lock is missing: run make lock" >&2; exit 1; }
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	cp requirements.lock "$$tmp/requirements.lock" && \
	$(LOCK_COMPILE) -o "$$tmp/requirements.lock" && \
	if diff -u requirements.lock "$$tmp/requirements.lock"; then \
	  echo "requirements.lock is up to date with pyproject.toml"; \
	else \
	  echo "requirements.lock is out of date with pyproject.toml: run make lock" >&2; exit 1; \
	fi

migrate: install
	mkdir -p "$${VEXXY_DATA_DIR:-var}"
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py createcachetable

# A busy port stops `make run` before anything else, naming the process that holds it.
check-port: install
	@$(BIN)/python -m vexxy.ports $(HOST) $(PORT)

# Runs the Procfile (vexxy/run_local.py, which checks the port again); Ctrl-C and SIGTERM
# stop it cleanly. exec: make's child is the supervisor itself, which make's SIGTERM reaches.
run: check-port migrate
	@echo ""
	@echo "VEXxy Premium Service (web, Celery worker and beat) — Ctrl-C stops all three"
	@echo "  API     http://$(HOST):$(PORT)/api/v1/"
	@echo "  health  http://$(HOST):$(PORT)/health   (also /livez, /readyz)"
	@echo "  admin   http://$(HOST):$(PORT)/admin/"
	@echo ""
	PATH="$(CURDIR)/$(BIN):$$PATH" exec $(BIN)/python -m vexxy.run_local \
	  --host $(HOST) --port $(PORT) --stop-timeout $(STOP_TIMEOUT)

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest $(PYTEST_ARGS)
	@echo "The reliability app's own tests, in a project with nothing else (no analysis, no RELIABILITY):"
	PYTHONPATH=. $(BIN)/pytest -p no:cacheprovider --noconftest -p tests.support.cache --ds tests.support.bare_project.settings tests/reliability

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
