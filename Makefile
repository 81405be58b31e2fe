# Set-up and checks; every target works on a fresh machine (it creates .venv itself).
#   make run    install, write sample data, run the default topology.yaml
#   make test   install the test tools, lint, type-check and run the whole test suite

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test check pytest bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/pipeline gen wrstat sample-data/wrstat
	$(VENV)/bin/pipeline run topology.yaml

check: $(STAMP)
	$(VENV)/bin/ruff check pipeline stages bench tests
	$(VENV)/bin/ruff format --check pipeline stages bench tests
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(PY) -m pytest

test: check pytest

bench: $(STAMP)
	$(PY) -m bench transport
	$(PY) -m bench wrstat

clean:
	rm -rf $(VENV) .pipeline sample-data out .mypy_cache .ruff_cache .pytest_cache
