# make run   create .venv, install the runtime requirements, migrate, start everything (manage.py serve)
# make dev   the same in development mode (DEBUG=1: Django's debug pages, static files from the source folders)
# make test  create .venv with the development requirements and run the whole test suite
# make lint  ruff check, ruff format --check, and no missing migrations

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check --quiet
PYTEST_ARGS ?=

.PHONY: run dev test lint format migrate clean

# The checkout is put on the venv's path (a .pth file), so that pytest can load portal.pytest_plugin with -p
# before it reads the settings, whatever directory pytest is started from.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { echo "Could not create $(VENV): install python3-venv (Debian/Ubuntu) or set PYTHON=" >&2; exit 1; }
	$(BIN)/python -c 'import pathlib, sys, sysconfig; pathlib.Path(sysconfig.get_paths()["purelib"], "_portal_checkout.pth").write_text(sys.argv[1] + "\n")' "$(CURDIR)"

# Each stamp is older than the requirements files it was made from, so editing them re-installs.
$(VENV)/.runtime-installed: requirements.txt | $(BIN)/python
	$(PIP) install -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(PIP) install -r requirements-dev.txt
	touch $@ $(VENV)/.runtime-installed

run: $(VENV)/.runtime-installed
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py serve

dev: $(VENV)/.runtime-installed
	$(BIN)/python manage.py migrate --noinput
	DEBUG=1 $(BIN)/python manage.py serve

migrate: $(VENV)/.runtime-installed
	$(BIN)/python manage.py migrate --noinput

test: $(VENV)/.dev-installed
	$(BIN)/pytest --durations=15 $(PYTEST_ARGS)

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
