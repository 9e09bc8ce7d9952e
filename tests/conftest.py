"""Shared fixtures: the public data sets, a temporary data folder per test, the API's model
store (built once per session, read only), a webhook receiver.

Builders live in ``tests/support``; a test never imports another test module.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from _pytest.nodeid import coerce_node_id
from litestar.testing import TestClient

from api.app import create_app
from api.config import ApiSettings
from leadscore_core.settings import Settings
from tests.support.api_models import build_model_store, make_settings, wait_ready, with_data_dir
from tests.support.ui import published  # noqa: F401 - the pages' files, a fixture
from tests.support.webhook import Receiver

SHARED_DATA = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config: pytest.Config,
                                  items: list[pytest.Item]) -> Iterator[None]:
    """Every test that reads the real data sets carries the ``realdata`` marker (deselect
    with ``-m "not realdata"`` for a quick loop; CI runs them all).

    Under xdist (``make test``: ``--dist loadgroup``) each ``xdist_group`` runs on one worker:
    a module's tests form one group unless marked otherwise, so its module-scoped fixtures
    are built once; a test marked ``xdist_group(name)`` goes with the others of that name (a
    slow module spreads over the workers that way)."""
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.realdata)
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.path.stem))
    yield
    # xdist tells its scheduler a test's group by a ``@group`` suffix on the node id; with
    # pytest's structured node ids (9.2) that suffix no longer takes (pytest-xdist issue
    # 1386) and every group would be scattered: it is added here where it is missing.
    if not getattr(config.option, "loadgroup", False):  # xdist absent or another --dist
        return
    for item in items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        suffix = "@" + "_".join(names)
        if not item.nodeid.endswith(suffix):
            item._id = coerce_node_id(item.nodeid + suffix)


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # optional: -p no:xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """loadgroup, with the slow parts split off their modules handed out first."""
    if config.getvalue("dist") == "loadgroup":
        from tests.support.schedule import SlowPartsFirst

        return SlowPartsFirst(config, log)
    return None


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
