# The two commands of the README: `make run` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Seconds `make run` waits for its processes to stop on Ctrl-C before it kills them.
STOP_TIMEOUT ?= 60
export HOST PORT

.PHONY: install check-port run test lint migrate clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/.installed

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
