# The two set-up commands of the README:
#   make app    install the desktop app into .venv and start it on the bundled samples
#   make test   install everything the tests need into .venv and run the whole suite
# Both create .venv at the repository root when it is missing and reuse it when present;
# the install step re-runs only when pyproject.toml changed since the last one.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: app test lint bench clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(VENV)/.installed-desktop: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[desktop]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[dev]'
	touch $@ $(VENV)/.installed-desktop

app: $(VENV)/.installed-desktop
	$(BIN)/waferdesk app $(ARGS)

test: $(VENV)/.installed-dev
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports

clean-venv:
	rm -rf $(VENV)
