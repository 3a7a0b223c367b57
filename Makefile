# PlantAI suite. `make demo` sets up and runs the main job; `make test` is what CI runs.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Reinstall only when pyproject.toml changes (make compares it with this stamp's time).
STAMP := $(VENV)/.plantai-installed
PACKAGES := herbarium catalog connectors ml_backends training local_services fiftyone_plugins plantai
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: install system-deps demo test lint typecheck pytest bench screenshots clean help

help:
	@echo "make demo   set up (first run installs) and run PlantAI on embedded defaults"
	@echo "make test   install, then ruff + mypy + pytest (what CI runs)"
	@echo "make lint   ruff check and format check"
	@echo "make bench  speed figures, each beside a baseline measured in the same run"
	@echo "make screenshots  Label Studio with PlantAI pre-annotations, in headless chromium (docs/images/)"

install: $(STAMP)

# Debian packages the tests start: PostgreSQL (the catalog's team database), and chromium with
# its driver (docs/screenshots.py drives it through Selenium).
system-deps:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "Installing PostgreSQL from Debian's packages"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }
	@test -x /usr/bin/chromedriver || { \
	  echo "Installing chromium and chromium-driver from Debian's packages"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "PlantAI needs $(PYTHON) (Python 3.11)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing PlantAI and its stack into $(VENV) (first time: a few minutes, about 7 GB)"
	@start=$$(date +%s); \
	$(BIN)/python -m pip install --quiet --upgrade pip && \
	$(BIN)/python -m pip install --quiet -e '.[dev]' && \
	$(BIN)/python -m pip check && \
	echo "Installed in $$(( $$(date +%s) - start )) s"
	@touch $(STAMP)

# Label Studio with pre-annotations from the four default models, and FiftyOne, on this machine.
# DEMO_IMAGES=DIR adds your own sheets; DEMO_ARGS="--no-browser --exit-after-ready" for scripts.
demo: $(STAMP)
	$(BIN)/plantai demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

# A private Label Studio and PlantAI backend, one generated sheet, its pre-annotations photographed.
screenshots: $(STAMP) system-deps
	$(BIN)/python docs/screenshots.py --demo --out docs/images/labelstudio-preannotations.png

bench: $(STAMP)
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf .cache .pytest_cache .mypy_cache .ruff_cache
