"""Realised performance over calendar time: one row per model and window of prediction time,
the realised ROC-AUC of that window's predictions beside the one estimated from their
probabilities alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from leadscore_assets.monitoring.performance import performance_over_time, window_frequency
from leadscore_core.estimation import expected_roc_auc


def judged(n: int = 300, days: float = 40, seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, n)
    return pd.DataFrame({
        "predicted_at": pd.Timestamp("2026-03-02") + pd.to_timedelta(rng.uniform(0, days, n),
                                                                     "D"),
        "model": "lead_conversion", "version": np.where(np.arange(n) < n // 2, "1", "2"),
        "subject": [f"s{i}" for i in range(n)], "probability": p,
        "outcome": rng.random(n) < p})


def test_each_calendar_week_gets_its_realised_and_estimated_roc_auc():
    rows = judged()
    out = performance_over_time(rows)
    # 2026-03-02 is a Monday: 40 days are six weeks from Monday to Sunday
    assert list(out["window_start"]) == ["2026-03-02", "2026-03-09", "2026-03-16",
                                         "2026-03-23", "2026-03-30", "2026-04-06"]
    assert list(out["window_end"])[:2] == ["2026-03-08", "2026-03-15"]
    assert out["predictions"].sum() == len(rows)
    for window in out.itertuples():
        start = pd.Timestamp(window.window_start)
        mine = rows[(rows["predicted_at"] >= start)
                    & (rows["predicted_at"] < start + pd.Timedelta(days=7))]
        assert window.predictions == len(mine)
        assert window.roc_auc == pytest.approx(roc_auc_score(mine["outcome"],
                                                             mine["probability"]))
        assert window.estimated_roc_auc == pytest.approx(expected_roc_auc(
            mine["probability"].to_numpy()))
        assert window.estimated_low <= window.estimated_roc_auc <= window.estimated_high
        assert window.versions == ", ".join(sorted(set(mine["version"])))


def test_long_spans_go_by_calendar_month_and_one_outcome_kind_has_no_realised_figure():
    rows = judged(days=300)
    assert window_frequency(rows["predicted_at"]) == "M"
    out = performance_over_time(rows)
    assert out["window_start"].iloc[0] == "2026-03-01"
    assert out["window_end"].iloc[0] == "2026-03-31"
    same = judged(n=20, days=3).assign(outcome=True)
    assert np.isnan(performance_over_time(same)["roc_auc"]).all()
    assert performance_over_time(same.iloc[:0]).empty
