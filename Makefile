# leadscore: every target installs what it needs first (uv, then the locked environment).
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
# Dagster reads dagster.yaml from DAGSTER_HOME; its storage goes under data/.
export DAGSTER_HOME := $(CURDIR)
export LEADSCORE_DAGSTER_STORAGE := $(CURDIR)/data/dagster
export LEADSCORE_DAGSTER_COMPUTE_LOGS := $(CURDIR)/data/dagster/compute_logs

.PHONY: setup demo test dev serve bench lint clean cluster cluster-down cluster-status cluster-test

setup:  ## install uv (if missing) and the locked environment
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	@$(UV) sync --frozen --quiet
	@mkdir -p $(LEADSCORE_DAGSTER_STORAGE)

demo: setup  ## write sample exports and run the whole pipeline on them
	$(UV) run leadscore demo

test: setup  ## run the test suite (each test uses its own temporary instance and data folder)
	env -u DAGSTER_HOME -u LEADSCORE_DATA_DIR $(UV) run pytest

dev: setup  ## Dagster UI and daemon (sensors running) on http://127.0.0.1:3000
	$(UV) run dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

serve: setup  ## prediction API on http://127.0.0.1:8000
	$(UV) run leadscore serve

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
