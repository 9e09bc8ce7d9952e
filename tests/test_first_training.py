"""A missing model trains on its own once its inputs are updated, exist and pass their checks.

Tick by tick with Dagster's own evaluator, on an instance with real runs: a new deployment
(nothing landed), the inputs materialised, the model's run succeeding, failing, or still
running when the inputs arrive.
"""

from __future__ import annotations

import threading

import dagster as dg
import pytest

from leadscore_assets.definitions import FIRST_TRAINING

FEATURES = dg.AssetKey(["features", "stand_in"])
MODEL = dg.AssetKey(["models", "stand_in"])


class Behaviour:
    """What the next run of each stand-in does (set by the test before it runs one)."""

    checks_pass = True
    model_fails = False
    model_started = threading.Event()
    model_may_finish = threading.Event()


@dg.asset(key=FEATURES)
def features() -> None:
    """The model's input table."""


@dg.asset_check(asset=FEATURES, blocking=True)
def features_valid() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=Behaviour.checks_pass)


@dg.asset(key=MODEL, deps=[FEATURES], automation_condition=FIRST_TRAINING)
def model() -> None:
    """Trains on the features; may fail, or wait to be released (a run in progress)."""
    Behaviour.model_started.set()
    assert Behaviour.model_may_finish.wait(timeout=120)
    if Behaviour.model_fails:
        raise RuntimeError("training failed")


DEFS = dg.Definitions(assets=[features, model], asset_checks=[features_valid])


class Ticks:
    """The automation sensor's successive ticks over one instance: each carries the cursor
    of the one before, as the daemon's do."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance, self.cursor = instance, None

    def model_requests(self) -> int:
        result = dg.evaluate_automation_conditions(defs=DEFS, instance=self.instance,
                                                   cursor=self.cursor)
        self.cursor = result.cursor
        return result.get_num_requested(MODEL)


def run(instance: dg.DagsterInstance, *assets) -> dg.ExecuteInProcessResult:
    return dg.materialize([features, features_valid, model], selection=list(assets),
                          instance=instance,
                          raise_on_error=False)


@pytest.fixture
def instance():
    Behaviour.checks_pass, Behaviour.model_fails = True, False
    Behaviour.model_started.clear()
    Behaviour.model_may_finish.set()
    with dg.instance_for_test() as instance:
        yield instance


def test_a_missing_model_is_requested_once_its_inputs_land(instance):
    ticks = Ticks(instance)
    assert ticks.model_requests() == 0  # a new deployment: nothing has landed
    assert ticks.model_requests() == 0
    assert run(instance, FEATURES).success
    assert ticks.model_requests() == 1  # the inputs exist and passed their blocking check
    assert ticks.model_requests() == 0  # requested: not again while its run starts
    assert run(instance, MODEL).success
    assert ticks.model_requests() == 0
    assert run(instance, FEATURES).success  # a feature refresh is not a first training
    assert ticks.model_requests() == 0


def test_a_failed_first_training_is_tried_again_only_when_new_data_comes(instance):
    ticks = Ticks(instance)
    assert ticks.model_requests() == 0
    assert run(instance, FEATURES).success
    assert ticks.model_requests() == 1
    Behaviour.model_fails = True
    assert not run(instance, MODEL).success
    assert [ticks.model_requests() for _ in range(3)] == [0, 0, 0]
    assert run(instance, FEATURES).success  # new data: tried again, once
    assert [ticks.model_requests() for _ in range(2)] == [1, 0]


def test_inputs_failing_their_blocking_check_hold_the_model_back(instance):
    ticks = Ticks(instance)
    assert ticks.model_requests() == 0
    Behaviour.checks_pass = False
    [evaluation] = run(instance, FEATURES).get_asset_check_evaluations()
    assert not evaluation.passed
    assert [ticks.model_requests() for _ in range(2)] == [0, 0]
    Behaviour.checks_pass = True
    assert run(instance, FEATURES).success
    assert ticks.model_requests() == 1


def test_a_run_already_training_the_model_is_not_duplicated(instance):
    ticks = Ticks(instance)
    assert ticks.model_requests() == 0
    # the main job (features, then the model) runs while the sensor ticks
    Behaviour.model_may_finish.clear()
    Behaviour.model_fails = True
    main = threading.Thread(target=run, args=(instance, FEATURES, MODEL))
    main.start()
    try:
        assert Behaviour.model_started.wait(timeout=120)  # features and check are done
        assert [ticks.model_requests() for _ in range(2)] == [0, 0]
    finally:
        Behaviour.model_may_finish.set()
        main.join(timeout=120)
    # that run failed: not retried on the same data
    assert [ticks.model_requests() for _ in range(2)] == [0, 0]
    assert run(instance, FEATURES).success
    assert [ticks.model_requests() for _ in range(2)] == [1, 0]


def test_a_model_missing_when_the_daemon_starts_waits_for_new_data(instance):
    """The daemon's first tick after a run that left the model missing (``make demo`` with
    nothing for it to learn from) asks for nothing; the next data that lands trains it."""
    assert run(instance, FEATURES).success
    ticks = Ticks(instance)
    assert [ticks.model_requests() for _ in range(2)] == [0, 0]
    assert run(instance, FEATURES).success
    assert [ticks.model_requests() for _ in range(2)] == [1, 0]
