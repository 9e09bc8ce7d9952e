"""Drift statistics: test selection, hand-computed values, and behaviour on real exports."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leadscore_assets.monitoring.drift import (
    DriftOptions,
    choose_test,
    compare_feature,
    detect_drift,
    psi,
    psi_numeric,
)
from leadscore_core.profiles import load_profiles

# -- test selection ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "reference_size", "n_unique", "expected"),
    [
        ("numeric", 1_000, 50, "ks"),
        ("numeric", 1_000, 4, "chisquare"),  # few distinct numbers are categories
        ("numeric", 1_000, 2, "z"),
        ("categorical", 1_000, 7, "chisquare"),
        ("categorical", 800, 2, "z"),
        ("boolean", 10, 2, "z"),
        ("numeric", 1_001, 50, "wasserstein"),
        ("numeric", 5_000, 3, "jensenshannon"),
        ("categorical", 1_001, 7, "jensenshannon"),
        ("boolean", 50_000, 2, "jensenshannon"),
    ],
)
def test_choose_test_by_type_and_reference_size(kind, reference_size, n_unique, expected):
    assert choose_test(kind, reference_size, n_unique) == expected


def test_detect_drift_applies_the_selected_test_per_column():
    rng = np.random.default_rng(1)

    def frame(n):
        return pd.DataFrame({
            "amount": rng.normal(100, 15, n),
            "source": pd.Series(rng.choice(["ads", "seo", "email", "partner"], n), dtype="string"),
            "opted_in": pd.Series(rng.random(n) < 0.3, dtype="boolean"),
        })

    small = detect_drift(frame(500), frame(400))
    large = detect_drift(frame(3_000), frame(400))
    assert {f.feature: f.test for f in small.features} == {
        "amount": "ks", "source": "chisquare", "opted_in": "z"}
    assert {f.feature: f.test for f in large.features} == {
        "amount": "wasserstein", "source": "jensenshannon", "opted_in": "jensenshannon"}


# -- hand-computed values ----------------------------------------------------------------------


def test_psi_on_a_small_categorical_table():
    ref = pd.Series(["a"] * 5 + ["b"] * 3 + ["c"] * 2)
    cur = pd.Series(["a"] * 3 + ["b"] * 3 + ["c"] * 4)
    expected = (0.3 - 0.5) * math.log(0.3 / 0.5) + 0.0 + (0.4 - 0.2) * math.log(0.4 / 0.2)
    result = compare_feature("x", ref, cur, "categorical")
    assert result.psi == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.2408, abs=1e-4)


def test_psi_numeric_uses_reference_quantile_bins():
    # median of the reference is 2.5: reference splits 2/2, current 3/1
    expected = (0.75 - 0.5) * math.log(0.75 / 0.5) + (0.25 - 0.5) * math.log(0.25 / 0.5)
    got = psi_numeric(np.array([1.0, 2, 3, 4]), np.array([1.0, 1, 1, 4]), bins=2)
    assert got == pytest.approx(expected, rel=1e-12)


def test_psi_empty_bin_counts_as_epsilon_not_infinity():
    value = psi(np.array([1.0, 0.0]), np.array([0.5, 0.5]))
    expected = (0.5 - 1.0) * math.log(0.5 / 1.0) + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    assert value == pytest.approx(expected)


def test_two_proportion_z_test_matches_the_pooled_formula():
    ref = pd.Series([True] * 30 + [False] * 70, dtype="boolean")
    cur = pd.Series([True] * 45 + [False] * 55, dtype="boolean")
    p1, p2, n1, n2 = 0.30, 0.45, 100, 100
    pooled = (30 + 45) / (n1 + n2)
    z = (p2 - p1) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    expected_p = math.erfc(abs(z) / math.sqrt(2))  # two-sided normal tail
    result = compare_feature("flag", ref, cur, "boolean")
    assert result.test == "z"
    assert result.statistic == pytest.approx(expected_p, rel=1e-9)
    assert result.drifted == (expected_p < 0.05)


def test_jensen_shannon_distance_matches_its_definition():
    ref = pd.Series(["x", "y"] * 1_000)
    cur = pd.Series(["x"] * 2_000)
    m = [0.75, 0.25]
    kl_ref = 0.5 * math.log(0.5 / m[0]) + 0.5 * math.log(0.5 / m[1])
    kl_cur = 1.0 * math.log(1.0 / m[0])
    expected = math.sqrt((kl_ref + kl_cur) / 2)
    result = compare_feature("channel", ref, cur, "categorical")
    assert result.test == "jensenshannon"
    assert result.statistic == pytest.approx(expected, rel=1e-9)
    assert result.drifted


def test_wasserstein_is_normed_by_the_reference_std():
    ref = pd.Series(np.tile(np.arange(10.0), 200))  # 2,000 rows, std sqrt(8.25)
    cur = ref + 1.0  # every value moved by one: distance 1
    result = compare_feature("visits", ref, cur, "numeric")
    assert result.test == "wasserstein"
    assert result.statistic == pytest.approx(1.0 / math.sqrt(8.25), rel=1e-9)
    assert result.drifted  # 0.348 >= 0.1


def test_missing_rate_drift_and_new_categories_are_reported():
    ref = pd.Series(["a", "b", "c", "a"] * 500, dtype="string")
    cur = pd.Series((["a", "b", "c", None] * 400) + ["zeta"] * 400, dtype="string")
    result = compare_feature("city", ref, cur, "categorical")
    assert result.missing_reference == 0.0
    assert result.missing_current == pytest.approx(400 / 2_000)
    assert result.missing_drifted
    assert result.new_categories == ["zeta"]
    assert result.drifted


def test_verdict_by_share_and_by_top_features():
    rng = np.random.default_rng(2)
    n = 3_000
    ref = pd.DataFrame({f"f{i}": rng.normal(0, 1, n) for i in range(6)})
    cur = pd.DataFrame({f"f{i}": rng.normal(0, 1, n) for i in range(6)})
    cur["f5"] += 1.0  # one of six features moves

    plain = detect_drift(ref, cur)
    assert plain.drifted_features == ["f5"]
    assert plain.share_drifted == pytest.approx(1 / 6)
    assert not plain.dataset_drifted

    important = detect_drift(ref, cur, importance={"f5": 10, "f0": 5, "f1": 3, "f2": 1})
    assert important.top_features == ["f5", "f0", "f1"]
    assert important.dataset_drifted
    assert "f5" in important.reasons[0]

    by_share = detect_drift(ref, cur, options=DriftOptions(share_threshold=0.15))
    assert by_share.dataset_drifted
    assert by_share.features[0].feature == "f5"  # sorted by drift score


def test_prediction_and_label_drift_are_reported_apart_from_the_share():
    rng = np.random.default_rng(3)
    n = 2_000
    ref = pd.DataFrame({"x": rng.normal(size=n), "score": rng.beta(2, 5, n),
                        "label": pd.Series(rng.random(n) < 0.3, dtype="boolean")})
    cur = pd.DataFrame({"x": rng.normal(size=n), "score": rng.beta(5, 2, n),
                        "label": pd.Series(rng.random(n) < 0.7, dtype="boolean")})
    result = detect_drift(ref, cur, prediction_column="score", label_column="label")
    assert [f.feature for f in result.features] == ["x"]
    assert result.prediction is not None and result.prediction.drifted
    assert result.label is not None and result.label.drifted
    assert not result.dataset_drifted


# -- real exports ------------------------------------------------------------------------------


def _typed(shared_data: Path, file: str, profile: str) -> tuple[pd.DataFrame, dict[str, str]]:
    df = pd.read_csv(shared_data / file, dtype=str, keep_default_na=False)
    resolved = load_profiles()[profile].resolve(list(df.columns))
    frame = resolved.type_frame(df).frame
    kinds = resolved.feature_columns
    return frame[list(kinds)], kinds


@pytest.fixture(scope="module")
def telco(shared_data):
    return _typed(shared_data, "telco_customer_churn.csv", "telco")


@pytest.fixture(scope="module")
def xeducation(shared_data):
    return _typed(shared_data, "xeducation_leads.csv", "xeducation")


TELCO_TOP = {"contract": 3.0, "tenure": 2.0, "monthly_charges": 1.0}
XED_TOP = {"total_time_spent_on_website": 3.0, "lead_source": 2.0, "lead_origin": 1.0}


def _halves(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    idx = np.random.default_rng(seed).permutation(len(frame))
    half = len(frame) // 2
    return frame.iloc[idx[:half]], frame.iloc[idx[half:]]


def test_prices_raised_30_percent_are_detected(telco):
    frame, kinds = telco
    ref, cur = _halves(frame, 11)
    cur = cur.copy()
    for col in ("monthly_charges", "total_charges"):
        cur[col] = cur[col] * 1.3
    result = detect_drift(ref, cur, kinds, importance=TELCO_TOP)
    assert result.dataset_drifted
    assert {"monthly_charges", "total_charges"} <= set(result.drifted_features)
    assert result.features[0].feature in {"monthly_charges", "total_charges"}


def test_lead_source_mix_shift_is_detected(xeducation):
    frame, kinds = xeducation
    ref, rest = _halves(frame, 12)
    # A campaign: three leads in four now come from one source that used to bring one in ten.
    campaign = rest[rest["lead_source"] == "reference"]
    others = rest[rest["lead_source"] != "reference"]
    cur = pd.concat([campaign.sample(1_500, replace=True, random_state=1),
                     others.sample(500, random_state=1)])
    result = detect_drift(ref, cur, kinds, importance=XED_TOP)
    assert result.dataset_drifted
    assert "lead_source" in result.drifted_features
    assert any("lead_source" in r for r in result.reasons)


@pytest.mark.parametrize("which", ["telco", "xeducation"])
def test_same_distribution_windows_are_rarely_flagged(which, request):
    frame, kinds = request.getfixturevalue(which)
    importance = TELCO_TOP if which == "telco" else XED_TOP
    ref, pool = _halves(frame, 13)
    rng = np.random.default_rng(2026)
    flagged = 0
    for _ in range(40):
        window = pool.sample(2_000, replace=True, random_state=int(rng.integers(2**31)))
        flagged += detect_drift(ref, window, kinds, importance=importance).dataset_drifted
    assert flagged / 40 < 0.05, f"{flagged} of 40 same-distribution windows flagged"


# -- the report --------------------------------------------------------------------------------


def test_report_is_self_contained_sorted_and_summarised(tmp_path):
    import json
    import re

    from leadscore_assets.monitoring.report import markdown_table, write_report

    rng = np.random.default_rng(4)
    n = 2_000
    ref = pd.DataFrame({"calm": rng.normal(size=n), "moved": rng.normal(size=n),
                        "channel": pd.Series(rng.choice(["a", "b"], n), dtype="string")})
    cur = ref.copy()
    cur["moved"] += 2.0
    cur["channel"] = pd.Series(rng.choice(["a", "b", "new"], n), dtype="string")
    result = detect_drift(ref, cur, importance={"moved": 1.0})

    html_path, json_path = write_report(result, tmp_path / "reports", "lead_conversion",
                                        "lead_conversion drift", {"model version": "7"})
    page = html_path.read_text()
    assert page.count("<svg") == 3  # one histogram per feature
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched
    order = [page.index(f"<td>{name}") for name in ("moved", "channel", "calm")]
    assert order == sorted(order)  # most drifted first
    assert "DRIFT" in page

    summary = json.loads(json_path.read_text())
    assert summary["model version"] == "7"
    assert summary["dataset_drifted"] is True
    assert summary["drifted_features"] == ["moved", "channel"]
    assert summary["features"][1]["new_categories"] == ["new"]

    table = markdown_table(result)
    assert table.splitlines()[2].startswith("| **moved** |")
    assert len(table.splitlines()) == 2 + 3
