# Human entry points. Each target sets up what it needs (venv, packages, Kafka jars, Mosquitto).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check unit bench infra-up infra-down clean venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $(STAMP)

venv: $(STAMP)

## demo: the main job - a realistic day on local Kafka and Mosquitto (starts and stops them itself)
demo: $(STAMP)
	$(BIN)/consent-broker demo

## test: lint, types, then every test (unit, integration on real Kafka + Mosquitto, faults)
test: check
	$(BIN)/pytest -q

## check: ruff and mypy (strict)
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## unit: the fast pure tests only (no broker)
unit: $(STAMP)
	$(BIN)/pytest -q tests/unit -m "not slow"

## bench: load tests; writes bench/results.json, bench/report.md and PNG plots (QUICK=1 for < 2 min)
bench: $(STAMP)
	$(BIN)/python -m loadtests $(if $(QUICK),--quick,)

infra-up: $(STAMP)
	$(BIN)/consent-broker infra up

infra-down: $(STAMP)
	$(BIN)/consent-broker infra down

clean: infra-down
	rm -rf $(VENV) .cache/infra bench
