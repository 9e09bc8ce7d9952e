"""Shared fixtures: the public data sets, a temporary data folder per test, the API's model
store (built once per session, read only), a webhook receiver.

Builders live in ``tests/support``; a test never imports another test module.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from api.app import create_app
from api.config import ApiSettings
from leadscore_core.settings import Settings
from tests.support.api_models import build_model_store, make_settings, wait_ready, with_data_dir
from tests.support.ui import published  # noqa: F401 - the pages' files, a fixture
from tests.support.webhook import Receiver

SHARED_DATA = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that reads the real data sets carries the ``realdata`` marker (deselect
    with ``-m "not realdata"`` for a quick loop; CI runs them all)."""
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.realdata)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (the real public data sets); skips with a reason when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data sets not found at {SHARED_DATA} (expected ../shared/data)")
    return SHARED_DATA


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings whose data folder is a fresh temporary directory."""
    monkeypatch.setenv("LEADSCORE_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    return Settings()


@pytest.fixture(scope="session")
def model_store(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Four small real models registered as champion in one MLflow store, built once per
    session (per xdist worker). Tests read it; one that moves aliases takes ``store_copy``."""
    return build_model_store(tmp_path_factory.mktemp("model_store"))


@pytest.fixture(scope="module")
def store(model_store: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The shared model store with a data folder of the module's own (serving snapshot,
    prediction log)."""
    return with_data_dir(model_store, tmp_path_factory.mktemp("api_data"))


@pytest.fixture(scope="module")
def client(store: dict) -> Iterator[TestClient]:
    """The API on the shared model store, started once per module (its lifespan run)."""
    app = create_app(make_settings(store), api_settings=ApiSettings(poll_seconds=0.2))
    with TestClient(app) as c:
        wait_ready(c)
        yield c


@pytest.fixture
def store_copy(model_store: dict, tmp_path: Path) -> str:
    """A registry of the test's own, for a test that moves aliases (a copy of the file: no
    slow initialisation)."""
    shutil.copy(model_store["tmp"] / "mlflow.db", tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook on 127.0.0.1 that records every JSON body posted to it."""
    hook = Receiver()
    try:
        yield hook
    finally:
        hook.close()
