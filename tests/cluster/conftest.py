"""The cluster profile on the machine's real PostgreSQL, RabbitMQ and Redis.

One cluster for the whole session (``deploy/cluster/cluster.py``, the same code ``make
cluster`` runs) with its own databases, RabbitMQ vhost, data folder and ports, dropped
afterwards. These tests run with ``make cluster-test`` (LEADSCORE_CLUSTER_TESTS=1) and are
skipped otherwise: they start a dozen processes and take minutes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from deploy.cluster import cluster as profile

ROOT = Path(__file__).resolve().parents[2]
PORT_VARS = ("LEADSCORE_DAGSTER_UI_PORT", "LEADSCORE_MLFLOW_PORT", "LEADSCORE_API_PORT")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("LEADSCORE_CLUSTER_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="cluster topology tests: run them with `make cluster-test`")
    for item in items:
        if "tests/cluster/" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def cluster_root():
    """A folder of this session's own: pytest's numbered temporary folders are pruned by any
    other pytest session of the same user, and the cluster's processes outlive a test."""
    root = Path(tempfile.mkdtemp(prefix="leadscore_cluster_test_"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster(cluster_root):
    """A running cluster: its settings (also exported to this process), stopped and dropped
    at the end."""
    tag = f"leadscore_test_{uuid.uuid4().hex[:8]}"
    data = cluster_root / "data"
    data.mkdir()
    with profile.isolated_cluster(tag, data, PORT_VARS, os.environ.get("LEADSCORE_TEST_PORTS"),
                                  {"LEADSCORE_API_POLL_SECONDS": "2"}) as env:
        yield env
