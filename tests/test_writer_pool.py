"""The single-writer pool is held only while writing: a file lands while a model trains,
and while a drift report, a performance estimate or the realised performance runs.

Real Dagster runs on a real (SQLite) instance whose ``duckdb_writer`` pool allows one step at
a time, as ``dagster.yaml`` configures it. A training (or monitoring) run is started in one
thread and held in progress (the registry or settings resource waits for the test: a
training just before it registers its version, a monitoring run as it starts or before it
publishes); meanwhile a lead export is landed in another thread. The landing writes the
warehouse and takes the pool; it can finish only if the other run does not hold the pool.
"""

from __future__ import annotations

import threading
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from leadscore_assets.features.assets import feature_assets
from leadscore_assets.ingest.assets import land_file
from leadscore_assets.ingest.landing import LandingZone
from leadscore_assets.models.assets import lead_conversion_model
from leadscore_assets.models.checks import ModelRegistryResource
from leadscore_assets.monitoring.assets import drift_key, monitoring_assets
from leadscore_assets.monitoring.estimated import estimated_assets, estimated_key
from leadscore_assets.resources import WAREHOUSE_POOL, SettingsResource
from leadscore_core.settings import Settings
from tests.support.pipeline import FAST, Stack

GUARD_SECONDS = 300  # only against a deadlock: no figure here is a timing

reached_registry = threading.Event()
may_register = threading.Event()


class HeldRegistry(ModelRegistryResource):
    """The real registry, reached by a training only when the test lets it: until then the
    training run stays in progress, with everything it would hold held."""

    def registry(self):
        reached_registry.set()
        if not may_register.wait(GUARD_SECONDS):
            raise RuntimeError("the test never let the training register")
        return super().registry()


LEADS = ("submitted_at,email,name,business_type,business_size,utm_source,utm_medium,"
         "utm_campaign\n"
         "2026-01-03T10:00:00Z,new1@example.com,Ann,clinic,small,google,cpc,spring\n"
         "2026-01-03T11:00:00Z,new2@example.com,Bob,retail,micro,partner,email,autumn\n")


@pytest.fixture(scope="module")
def featured(tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """The hand-made clean tables with their features published, made once: each test works
    on its own copy (``Stack.copy``), so none sees what another changed."""
    stack = Stack(tmp_path_factory.mktemp("featured"))
    assert dg.materialize(feature_assets, resources=stack.resources()).success
    return stack


@pytest.fixture
def instance(tmp_path: Path):
    with dg.instance_for_test(overrides={
            "concurrency": {"pools": {"default_limit": 1, "granularity": "op"}}}) as instance:
        yield instance


class HeldSettings(SettingsResource):
    """The real settings, reached by a realised-performance run (once it has read and judged
    everything) only when the test lets it."""

    def get(self):
        reached_registry.set()
        if not may_register.wait(GUARD_SECONDS):
            raise RuntimeError("the test never let the run go on")
        return super().get()


def _held_training(stack: Stack, resources: dict) -> tuple[list, dict, dict]:
    return ([lead_conversion_model],
            {**resources, "model_registry": HeldRegistry(tracking_uri=stack.tracking_uri)},
            {"ops": {"models__lead_conversion": {"config": FAST}}})


def _held_monitoring(key: dg.AssetKey):
    def held(stack: Stack, resources: dict) -> tuple[list, dict, dict]:
        [asset] = [a for a in [*monitoring_assets, *estimated_assets] if key in a.keys]
        return ([asset], {**resources, "settings": HeldSettings(data_dir=str(stack.data)),
                          "model_registry": HeldRegistry(tracking_uri=stack.tracking_uri)}, {})
    return held


HELD_RUNS = {
    "training": _held_training,
    "drift": _held_monitoring(drift_key("lead_conversion")),
    "estimated_performance": _held_monitoring(estimated_key("lead_conversion")),
    "realised_performance": _held_monitoring(dg.AssetKey(["monitoring",
                                                          "realised_performance"])),
}


@pytest.mark.parametrize("held", list(HELD_RUNS))
def test_a_file_lands_while_a_model_trains_or_monitoring_runs(
        held: str, featured: Stack, tmp_path: Path, instance: dg.DagsterInstance):
    stack = featured.copy(tmp_path)
    resources = stack.resources()

    reached_registry.clear()
    may_register.clear()
    assets, held_resources, run_config = HELD_RUNS[held](stack, resources)
    running: dict[str, dg.ExecuteInProcessResult] = {}

    def run() -> None:
        running["result"] = dg.materialize(assets, instance=instance, raise_on_error=False,
                                           resources=held_resources, run_config=run_config)

    runner = threading.Thread(target=run)
    runner.start()
    try:
        assert reached_registry.wait(GUARD_SECONDS), "the run never got going"
        [started] = instance.get_runs(
            filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))

        settings = Settings(data_dir=stack.data)
        inbox = settings.inbox("leads")
        inbox.mkdir(parents=True, exist_ok=True)
        (inbox / "late_leads.csv").write_text(LEADS)
        landing: dict[str, dg.ExecuteInProcessResult] = {}

        def land() -> None:
            landing["result"] = land_file(
                "leads", "late_leads.csv", landing=LandingZone.from_settings(settings),
                warehouse=DuckDBResource(database=str(stack.warehouse)), instance=instance)

        lander = threading.Thread(target=land)
        lander.start()
        lander.join(GUARD_SECONDS)
        landed_while_running = not lander.is_alive() and runner.is_alive()
        still_running = instance.get_run_by_id(started.run_id).status
    finally:
        may_register.set()
        runner.join(GUARD_SECONDS)
    lander.join(GUARD_SECONDS)

    # the pool the landing took allows one step at a time, as dagster.yaml configures it
    assert instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).slot_count == 1
    assert landed_while_running, f"the landing waited for the {held} run to finish"
    assert still_running == dg.DagsterRunStatus.STARTED
    assert landing["result"].success
    assert running["result"].success
    with duckdb.connect(str(stack.warehouse), read_only=True) as conn:
        emails = {r[0] for r in conn.execute("SELECT email FROM raw.leads").fetchall()}
    assert {"new1@example.com", "new2@example.com"} <= emails
