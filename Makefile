# Human entry points. Each target sets up what it needs (venv, packages, Kafka jars, Mosquitto).
PYTHON ?= python3
AUDIT_KAFKA_PORT ?= 28792
AUDIT_MQTT_PORT ?= 20783
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-open check unit bench bench-audit bench-faults bench-scale bench-micro bench-checks infra-up infra-down clean venv tools

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

## test-open: the tests that reproduce defects still open (marker known_open; not part of make test)
test-open: $(STAMP) tools
	$(BIN)/pytest -q -m known_open || [ $$? -eq 5 ]  # 5: none collected (no defect open today)

## unit: the fast pure tests only (no broker)
unit: $(STAMP)
	$(BIN)/pytest -q tests/unit -m "not slow"

## bench: fleet load test on its own Kafka+Mosquitto; writes bench/results.json, report.md, *.png (QUICK=1: < 2 min)
bench: $(STAMP)
	$(BIN)/python -m loadtests $(if $(QUICK),--quick)

## bench-scale: API at national scale (issue 16): RSS at 25/50/100% of M events, restart, decision/access-log/report latency; writes bench/scale.json (QUICK=1: 200k patients, 2M events; ports: SCALE_KAFKA_PORT/SCALE_MQTT_PORT)
bench-scale: $(STAMP)
	mkdir -p bench
	$(BIN)/python -m loadtests.scale_bench $(if $(QUICK),--quick) --kafka-port $(or $(SCALE_KAFKA_PORT),24592) --mqtt-port $(or $(SCALE_MQTT_PORT),16583)

## bench-audit: audit transparency log (appends/s with 2 witnesses, checkpoint latency, proof sizes); writes bench/audit.json
bench-audit: $(STAMP)
	mkdir -p bench
	$(BIN)/python -m loadtests.audit_bench --kafka-port $(AUDIT_KAFKA_PORT) --mqtt-port $(AUDIT_MQTT_PORT) --out bench/audit.json

## bench-micro: wire protocol (sign/verify per event and batch, site-pseudonym translation), edge agent (durable submissions/s, 1M backlog drain, memory)
bench-micro: $(STAMP)
	mkdir -p bench
	$(BIN)/python -m loadtests.wire_bench --out bench/wire.json
	$(BIN)/python -m loadtests.pseudonym_bench --out bench/pseudonyms.json
	$(BIN)/python -m loadtests.edge_bench --mode http --events 200000 --batch 200 --concurrency 8 --uvloop --out bench/edge.json
	$(BIN)/python -m loadtests.edge_bench --mode drain --events 1000000 --uvloop --out bench/edge-drain.json

## bench-checks: batch opt-out check, 1,000,000 NHS numbers through POST /v1/checks on its own stack (CHECKS_KAFKA_PORT, CHECKS_MQTT_PORT); writes bench/checks.json
CHECKS_KAFKA_PORT ?= 29692
CHECKS_MQTT_PORT ?= 21683
bench-checks: $(STAMP)
	mkdir -p bench
	CONSENT_KAFKA_PORT=$(CHECKS_KAFKA_PORT) CONSENT_MQTT_PORT=$(CHECKS_MQTT_PORT) $(BIN)/consent-broker infra up --name bench-checks
	$(BIN)/python -m loadtests.checks_bench --stack bench-checks --kafka-port $(CHECKS_KAFKA_PORT) --mqtt-port $(CHECKS_MQTT_PORT) --out bench/checks.json
	CONSENT_KAFKA_PORT=$(CHECKS_KAFKA_PORT) CONSENT_MQTT_PORT=$(CHECKS_MQTT_PORT) $(BIN)/consent-broker infra down --name bench-checks

infra-up: $(STAMP)
	$(BIN)/consent-broker infra up

infra-down: $(STAMP)
	$(BIN)/consent-broker infra down

clean: infra-down
	rm -rf $(VENV) .cache/infra bench

## bench-faults: catch-up after a stage kill, broker kill/pause, full outage, rebalance (3 brokers, real agents); writes bench/faults.json (QUICK=1: < 10 min)
bench-faults: $(STAMP)
	$(BIN)/python -m loadtests.faults_bench $(if $(QUICK),--quick)
