"""Quality bars on the public data sets: held-out ROC-AUC of each reference model.

One training per data set, shared by every test of this module that reads it (under xdist,
the tests of one data set form one group: each training runs on one worker, the four spread
over the workers). Each figure is measured on rows the model never saw (the latest slice
where the data has time).
"""

from __future__ import annotations

import pandas as pd
import pytest

from leadscore_assets.models.quality import BARS, run_quality

pytestmark = pytest.mark.realdata

# Reached on a time-ordered or random held-out slice only with the features the data sets
# offer; kept visible (strict) so the test flags the day a model clears its bar.
SHORT_OF_BAR = {
    "xeducation_conversion": "held-out 0.864 (95% bootstrap 0.846-0.879; CV 0.880, other random "
                             "slices 0.873-0.884) without the columns sales fill in after "
                             "contact",
    "codepro_conversion": "time-based hold-out 0.79 (95% bootstrap 0.778-0.801; CV 0.83 on the "
                          "earlier leads): the latest leads come from campaigns the earlier "
                          "ones barely show",
    "retail_activity_churn": "held-out 0.747 (95% bootstrap 0.731-0.765) at the 2011-09-11 "
                             "cutoff: its horizon is the Christmas season, which no earlier "
                             "(fully observed) cutoff shows",
}

_cache: dict[str, object] = {}


def result(name: str, data):
    if name not in _cache:
        (_cache[name],) = run_quality(data, [name])
    return _cache[name]


def trains(name: str) -> pytest.MarkDecorator:
    """The xdist group of the tests that read ``name``'s training."""
    return pytest.mark.xdist_group(f"quality_{name}")


def bar_param(name: str):
    marks = [pytest.mark.xfail(strict=True, reason=SHORT_OF_BAR[name])] \
        if name in SHORT_OF_BAR else []
    return pytest.param(name, marks=[trains(name), *marks], id=name)


@pytest.mark.parametrize("name", [bar_param(n) for n in BARS])
def test_held_out_roc_auc_meets_the_bar(name, shared_data):
    assert result(name, shared_data).roc_auc >= BARS[name]


@pytest.mark.parametrize("name", [pytest.param(n, marks=trains(n), id=n) for n in BARS])
def test_lightgbm_at_least_matches_the_baseline(name, shared_data):
    r = result(name, shared_data)
    # a weaker model than logistic regression would mean broken encoding or selection
    assert r.roc_auc >= r.baseline_roc_auc - 0.005
    assert r.roc_auc > 0.7


@trains("retail_activity_churn")
def test_bootstrap_interval_brackets_the_held_out_figure(shared_data):
    r = result("retail_activity_churn", shared_data)
    low, high = r.roc_auc_interval()
    assert low < r.roc_auc < high
    # a few thousand held-out rows: the interval is a few hundredths wide, not a point
    assert 0.005 < high - low < 0.08
    assert r.roc_auc_interval() == (low, high)  # seeded: the table is reproducible


@trains("xeducation_conversion")
def test_no_column_filled_in_after_contact_is_a_feature(shared_data):
    features = {s.original_name for s in
                result("xeducation_conversion", shared_data).trained.bundle.encoder.specs}
    leaking = {"Tags", "Lead Quality", "Last Activity", "Last Notable Activity", "Lead Profile",
               "Asymmetrique Activity Index", "Asymmetrique Profile Index",
               "Asymmetrique Activity Score", "Asymmetrique Profile Score", "Converted"}
    assert not features & leaking
    assert "Total Time Spent on Website" in features


@trains("retail_activity_churn")
def test_activity_churn_is_judged_at_a_later_cutoff_than_it_learned_from(shared_data):
    trained = result("retail_activity_churn", shared_data).trained
    assert trained.split["kind"] == "group" and trained.holdout["cutoff"].nunique() == 1
    # every training label (90 days after its cutoff) was known before the held-out cutoff
    last_train, held = pd.Timestamp(trained.split["train_until"]), trained.holdout["cutoff"][0]
    assert last_train + pd.Timedelta(days=90) <= held
    assert trained.row_counts["train"] > 2 * trained.row_counts["holdout"]


@trains("codepro_conversion")
def test_codepro_is_judged_on_its_latest_leads(shared_data):
    trained = result("codepro_conversion", shared_data).trained
    assert trained.split["kind"] == "time"
    assert pd.Timestamp(trained.split["train_until"]) <= trained.holdout["created_at"].min()


@pytest.mark.xdist_group("quality_seed_spread")  # its own trainings
def test_seed_spread_trains_a_new_held_out_slice_per_seed(shared_data):
    from leadscore_assets.models.quality import format_table

    (r,) = run_quality(shared_data, ["telco_snapshot_churn"], seeds=3)
    assert len(r.seed_roc_aucs) == 3
    # a random split: each seed holds out other customers, so the figures differ
    assert len(set(r.seed_roc_aucs)) == 3
    assert all(0.7 < auc < 1.0 for auc in r.seed_roc_aucs)
    line = format_table([r]).splitlines()[-1]
    assert line.startswith("telco_snapshot_churn: over 3 seeds (held-out slice and model)")
    assert f"mean {sum(r.seed_roc_aucs) / 3:.4f}" in line
