# make run   create .venv, install the runtime requirements, migrate, start everything (manage.py serve)
# make dev   the same in development mode (DEBUG=1: Django's debug pages, static files from the source folders)
# make test  create .venv with the development requirements and run the whole test suite (TEST_WORKERS=3 processes; 0: one)
# make lint  ruff check, ruff format --check, and no missing migrations
# make lock  resolve requirements*.txt again into the lock files (newest versions they allow), with hashes

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check --quiet
PYTEST_ARGS ?=
# The suite runs on this many pytest-xdist workers (0: all in one process, as a single test module is run).
TEST_WORKERS ?= 3

.PHONY: run dev test lint lock format migrate clean

# The checkout is put on the venv's path (a .pth file), so that pytest can load portal.pytest_plugin with -p
# before it reads the settings, whatever directory pytest is started from.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { echo "Could not create $(VENV): install python3-venv (Debian/Ubuntu) or set PYTHON=" >&2; exit 1; }
	$(BIN)/python -c 'import pathlib, sys, sysconfig; pathlib.Path(sysconfig.get_paths()["purelib"], "_portal_checkout.pth").write_text(sys.argv[1] + "\n")' "$(CURDIR)"

# Everything is installed from the lock files: exact versions of every dependency, transitive ones included,
# checked against their hashes, so every machine gets what CI tested. requirements*.txt say what we ask for
# and why; `make lock` turns them into the lock files. Each stamp is older than the lock files it was made
# from, so a changed lock re-installs.
$(VENV)/.runtime-installed: requirements.lock | $(BIN)/python
	$(PIP) install --require-hashes -r requirements.lock
	touch $@

$(VENV)/.dev-installed: requirements.lock requirements-dev.lock | $(BIN)/python
	$(PIP) install --require-hashes -r requirements-dev.lock
	touch $@ $(VENV)/.runtime-installed

# The development lock is resolved within the runtime lock, so both hold the same version of each package.
# LOCK_FLAGS= (empty) keeps every pin that still fits and only adds or drops what the requirements changed.
UV_VERSION := 0.13.9
LOCK_FLAGS ?= --upgrade
UV_COMPILE = $(BIN)/uv pip compile --quiet --custom-compile-command "make lock" --universal --python-version 3.11 --generate-hashes $(LOCK_FLAGS)
lock: | $(BIN)/python
	$(PIP) install uv==$(UV_VERSION)
	$(UV_COMPILE) requirements.txt -o requirements.lock
	$(UV_COMPILE) requirements-dev.txt -c requirements.lock -o requirements-dev.lock

run: $(VENV)/.runtime-installed
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py serve

dev: $(VENV)/.runtime-installed
	$(BIN)/python manage.py migrate --noinput
	DEBUG=1 $(BIN)/python manage.py serve

migrate: $(VENV)/.runtime-installed
	$(BIN)/python manage.py migrate --noinput

test: $(VENV)/.dev-installed
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --durations=15 $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run

format: $(VENV)/.dev-installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# var/ holds the database and the repositories, so clean leaves it alone.
clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
