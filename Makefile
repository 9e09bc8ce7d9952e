# leadscore: every target installs what it needs first (uv, then the locked environment).
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
# Dagster keeps its storage under DAGSTER_HOME (data/dagster) and reads dagster.yaml there:
# `setup` links the project's file into it.
export DAGSTER_HOME := $(CURDIR)/data/dagster

.PHONY: setup demo test dev serve mlflow bench lint clean cluster cluster-down cluster-status cluster-test

setup:  ## install uv (if missing), the locked environment, and Debian's Chromium for the page tests
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	@$(UV) sync --frozen --quiet
	@mkdir -p $(DAGSTER_HOME) && ln -sfn ../../dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	@# the browser tests drive Debian's Chromium (never a downloaded browser build)
	@if ! command -v chromium >/dev/null 2>&1; then \
		if command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else echo "no apt-get: install Chromium yourself, or the browser tests skip (LEADSCORE_CHROMIUM names its path)"; fi; \
	fi

demo: setup  ## write sample exports and run the whole pipeline on them
	$(UV) run leadscore demo

test: setup  ## run the test suite on every core (each test uses its own temporary instance and data folder)
	env -u DAGSTER_HOME -u LEADSCORE_DATA_DIR $(UV) run pytest -n auto --dist loadgroup

dev: setup  ## Dagster UI and daemon (sensors running) on http://127.0.0.1:3000
	$(UV) run dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

serve: setup  ## prediction API and pages on http://127.0.0.1:8000 (pages at /ui)
	$(UV) run leadscore serve

mlflow: setup  ## MLflow UI (runs, registry, plots) on http://127.0.0.1:5000, over the project's store
	$(UV) run mlflow ui --host 127.0.0.1 --port 5000 \
		--backend-store-uri "$$($(UV) run python -c 'from leadscore_core.settings import get_settings; print(get_settings().mlflow_uri)')" \
		--default-artifact-root "$(CURDIR)/data/mlflow/artifacts"

bench: setup  ## benchmarks (figures against a baseline, printed)
	@missed=""; for b in bench/bench_*.py; do echo "== $$b"; $(UV) run python $$b || missed="$$missed $$b"; done; \
	if [ -n "$$missed" ]; then echo "targets missed in:$$missed"; exit 1; fi

cluster: setup  ## the cluster profile (deploy/cluster/): create databases, vhost; start every piece
	$(UV) run python deploy/cluster/cluster.py up

cluster-down:  ## stop the cluster profile's processes (DROP=1: also drop its databases, vhost)
	$(UV) run python deploy/cluster/cluster.py down $(if $(DROP),--drop,)

cluster-status:
	$(UV) run python deploy/cluster/cluster.py status

cluster-test: setup  ## the cluster topology's tests on the real PostgreSQL, RabbitMQ and Redis
	env -u DAGSTER_HOME -u LEADSCORE_DATA_DIR LEADSCORE_CLUSTER_TESTS=1 \
		$(UV) run pytest -p no:xdist -x -v tests/cluster

lint: setup
	$(UV) run ruff check .

clean:  ## remove everything runs wrote (keeps data/README.md)
	find data -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
