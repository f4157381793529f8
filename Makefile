# Human entry points. Each target sets up what it needs (venv, packages, Kafka jars, Mosquitto).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check unit bench bench-micro bench-faults infra-up infra-down clean venv tools

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,bench,reports]'
	touch $(STAMP)

venv: $(STAMP)

## demo: the main job - a realistic day on local Kafka and Mosquitto (starts and stops them itself)
demo: $(STAMP)
	$(BIN)/consent-broker demo

## test: lint, types, then every test (unit, integration on real Kafka + Mosquitto, faults)
test: check tools
	$(BIN)/pytest -q

## tools: independent checkers the tests run against (each tools/install-*.sh is idempotent, installs into .cache/tools/)
tools:
	@set -e; for script in tools/install-*.sh; do [ -e "$$script" ] || continue; bash "$$script"; done

## check: ruff and mypy (strict)
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## unit: the fast pure tests only (no broker)
unit: $(STAMP)
	$(BIN)/pytest -q tests/unit -m "not slow"

## bench: fleet load test on its own Kafka+Mosquitto; writes bench/results.json, report.md, *.png (QUICK=1: < 2 min)
bench: $(STAMP)
	$(BIN)/python -m loadtests $(if $(QUICK),--quick)

## bench-micro: wire protocol (sign/verify per event and batch), edge agent (durable submissions/s, 1M backlog drain, memory)
bench-micro: $(STAMP)
	mkdir -p bench
	$(BIN)/python -m loadtests.wire_bench --out bench/wire.json
	$(BIN)/python -m loadtests.edge_bench --mode http --events 200000 --batch 200 --concurrency 8 --uvloop --out bench/edge.json
	$(BIN)/python -m loadtests.edge_bench --mode drain --events 1000000 --uvloop --out bench/edge-drain.json

infra-up: $(STAMP)
	$(BIN)/consent-broker infra up

infra-down: $(STAMP)
	$(BIN)/consent-broker infra down

clean: infra-down
	rm -rf $(VENV) .cache/infra bench

## bench-faults: catch-up after a stage kill, broker kill/pause, full outage, rebalance (3 brokers, real agents); writes bench/faults.json (QUICK=1: < 10 min)
bench-faults: $(STAMP)
	$(BIN)/python -m loadtests.faults_bench $(if $(QUICK),--quick)
