"""Data drift between a model's reference (what it was trained on) and a current window.

Per feature, the test follows Evidently's defaults, chosen by the feature's type and the
reference's size:

============================  ===========================  =================================
reference rows                numeric (> 5 distinct)       categorical / few-valued numeric
============================  ===========================  =================================
<= 1,000                      Kolmogorov-Smirnov, p < 0.05  chi-squared (> 2 values) or a
                                                           two-proportion z-test (binary),
                                                           p < 0.05
> 1,000                       Wasserstein distance / ref.  Jensen-Shannon distance >= 0.1
                              std >= 0.1
============================  ===========================  =================================

Large samples make every p-value tiny, which is why the big-reference tests are distances with
a fixed threshold. PSI is reported for every feature as well (informational), with the change
in the missing-value rate and the categories never seen in the reference.

The dataset counts as drifted when the share of drifted features reaches ``share_threshold``
or when one of the model's most important features drifts.

Pure functions: pandas, numpy and scipy only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon

Kind = Literal["numeric", "categorical", "boolean"]
TestName = Literal["ks", "chisquare", "z", "wasserstein", "jensenshannon"]

SMALL_REFERENCE = 1_000  # at most this many reference rows: hypothesis tests
P_VALUE_THRESHOLD = 0.05
DISTANCE_THRESHOLD = 0.1
FEW_VALUES = 5  # a numeric feature with at most this many distinct values is categorical
PSI_BINS = 10
PSI_EPSILON = 1e-4  # an empty bin's share, so PSI stays finite (the usual convention)
HISTOGRAM_BINS = 20
HISTOGRAM_CATEGORIES = 12
OTHER = "(other)"

P_VALUE_TESTS = {"ks", "chisquare", "z"}
TEST_LABELS = {
    "ks": "Kolmogorov-Smirnov p-value",
    "chisquare": "chi-squared p-value",
    "z": "two-proportion z-test p-value",
    "wasserstein": "Wasserstein distance (normed)",
    "jensenshannon": "Jensen-Shannon distance",
}


@dataclass(frozen=True)
class DriftOptions:
    """Thresholds of the drift verdict; the defaults are Evidently's."""

    share_threshold: float = 0.5
    top_features: int = 3
    p_value_threshold: float = P_VALUE_THRESHOLD
    distance_threshold: float = DISTANCE_THRESHOLD
    missing_rate_threshold: float = 0.1  # absolute change in the share of missing values


@dataclass(frozen=True)
class Histogram:
    """Shares of reference and current values over common bins (for the report)."""

    labels: list[str]
    reference: list[float]
    current: list[float]


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str  # numeric | categorical | binary, as tested
    test: str
    statistic: float  # the p-value for hypothesis tests, the distance otherwise
    threshold: float
    drifted: bool  # the distribution test or the missing-value rate
    score: float  # severity comparable across tests: 1.0 at the threshold, higher = more drift
    psi: float
    missing_reference: float
    missing_current: float
    missing_drifted: bool
    new_categories: list[str]
    n_reference: int
    n_current: int
    important: bool = False
    histogram: Histogram | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class DriftResult:
    features: list[FeatureDrift]  # sorted by score, most drifted first
    share_drifted: float
    share_threshold: float
    top_features: list[str]
    dataset_drifted: bool
    reasons: list[str]
    n_reference: int
    n_current: int
    prediction: FeatureDrift | None = None
    label: FeatureDrift | None = None

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    def table(self) -> pd.DataFrame:
        """One row per feature (most drifted first), without the histograms."""
        rows = [{k: v for k, v in asdict(f).items() if k != "histogram"} for f in self.features]
        return pd.DataFrame(rows)

    def summary(self) -> dict:
        """JSON-ready summary: verdict, share, reasons and the per-feature table."""

        def one(f: FeatureDrift | None) -> dict | None:
            if f is None:
                return None
            out = {k: v for k, v in asdict(f).items() if k != "histogram"}
            return {k: _json_number(v) for k, v in out.items()}

        return {
            "dataset_drifted": self.dataset_drifted,
            "share_drifted": self.share_drifted,
            "share_threshold": self.share_threshold,
            "drifted_features": self.drifted_features,
            "top_features": self.top_features,
            "reasons": self.reasons,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "prediction": one(self.prediction),
            "label": one(self.label),
            "features": [one(f) for f in self.features],
        }


def _json_number(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# -- test selection ----------------------------------------------------------------------------


def tested_kind(kind: str, n_unique: int) -> str:
    """How a feature is tested: ``numeric``, ``categorical`` or ``binary``."""
    if kind == "numeric" and n_unique > FEW_VALUES:
        return "numeric"
    return "binary" if n_unique <= 2 else "categorical"


def choose_test(kind: str, reference_size: int, n_unique: int) -> TestName:
    """The default test for a feature (Evidently's rule; see the module docstring)."""
    tk = tested_kind(kind, n_unique)
    if reference_size <= SMALL_REFERENCE:
        return {"numeric": "ks", "categorical": "chisquare", "binary": "z"}[tk]
    return "wasserstein" if tk == "numeric" else "jensenshannon"


def infer_kind(values: pd.Series) -> Kind:
    if pd.api.types.is_bool_dtype(values):
        return "boolean"
    if pd.api.types.is_numeric_dtype(values):
        return "numeric"
    return "categorical"


# -- the statistics ----------------------------------------------------------------------------


def _as_float(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").astype("float64").to_numpy()


def _as_labels(values: pd.Series) -> pd.Series:
    # Booleans and few-valued numbers are compared as categories; text keeps its case as
    # cleaning already normalised it.
    return values.astype("string")


def _category_counts(ref: pd.Series, cur: pd.Series) -> tuple[list[str], np.ndarray, np.ndarray]:
    rc = ref.value_counts(dropna=True)
    cc = cur.value_counts(dropna=True)
    keys = list(rc.index.union(cc.index))
    return (keys, rc.reindex(keys, fill_value=0).to_numpy(float),
            cc.reindex(keys, fill_value=0).to_numpy(float))


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else counts


def psi(reference_shares: np.ndarray, current_shares: np.ndarray) -> float:
    """Population stability index over matching bins: sum((c - r) * ln(c / r)).

    Empty bins count as ``PSI_EPSILON`` so a category that appears or vanishes gives a large,
    finite value instead of infinity.
    """
    r = np.where(reference_shares > 0, reference_shares, PSI_EPSILON)
    c = np.where(current_shares > 0, current_shares, PSI_EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def psi_numeric(reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS) -> float:
    """PSI over the reference's deciles (ties merged): the credit-scoring convention."""
    if len(reference) == 0 or len(current) == 0:
        return float("nan")
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    # bin i holds values in (edge[i-1], edge[i]]; the outer bins are open-ended
    r = np.bincount(np.searchsorted(edges, reference, side="left"), minlength=len(edges) + 1)
    c = np.bincount(np.searchsorted(edges, current, side="left"), minlength=len(edges) + 1)
    return psi(_shares(r.astype(float)), _shares(c.astype(float)))


def _numeric_histogram(ref: np.ndarray, cur: np.ndarray) -> Histogram:
    both = np.concatenate([ref, cur])
    if len(both) == 0:
        return Histogram([], [], [])
    # Edges from the middle 98% of the values so one outlier does not squash every bar.
    lo, hi = np.quantile(both, [0.01, 0.99])
    if lo == hi:
        lo, hi = float(both.min()), float(both.max())
    if lo == hi:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, HISTOGRAM_BINS + 1)
    r, _ = np.histogram(np.clip(ref, lo, hi), edges)
    c, _ = np.histogram(np.clip(cur, lo, hi), edges)
    labels = [f"{edges[i]:.4g}" for i in range(HISTOGRAM_BINS)]
    return Histogram(labels, _shares(r.astype(float)).tolist(), _shares(c.astype(float)).tolist())


def _category_histogram(keys: list[str], r: np.ndarray, c: np.ndarray) -> Histogram:
    rs, cs = _shares(r), _shares(c)
    order = np.argsort(-(rs + cs), kind="stable")
    keep, rest = order[:HISTOGRAM_CATEGORIES], order[HISTOGRAM_CATEGORIES:]
    labels = [str(keys[i]) for i in keep]
    ref_out, cur_out = rs[keep].tolist(), cs[keep].tolist()
    if len(rest):
        labels.append(OTHER)
        ref_out.append(float(rs[rest].sum()))
        cur_out.append(float(cs[rest].sum()))
    return Histogram(labels, ref_out, cur_out)


def compare_feature(
    name: str,
    reference: pd.Series,
    current: pd.Series,
    kind: str | None = None,
    options: DriftOptions = DriftOptions(),
    test: TestName | None = None,
) -> FeatureDrift:
    """Drift of one feature: the default test for its type and size, PSI, missing values."""
    kind = kind or infer_kind(reference)
    n_ref, n_cur = len(reference), len(current)
    miss_ref = float(reference.isna().mean()) if n_ref else 0.0
    miss_cur = float(current.isna().mean()) if n_cur else 0.0
    ref = reference.dropna()
    cur = current.dropna()

    if kind == "numeric":
        ref_num, cur_num = _as_float(ref), _as_float(cur)
        ref_num, cur_num = ref_num[~np.isnan(ref_num)], cur_num[~np.isnan(cur_num)]
        n_unique = len(np.unique(np.concatenate([ref_num, cur_num])))
    else:
        ref_lab, cur_lab = _as_labels(ref), _as_labels(cur)
        n_unique = int(pd.concat([ref_lab, cur_lab]).nunique())
    test = test or choose_test(kind, n_ref, n_unique)
    as_kind = tested_kind(kind, n_unique)
    new_categories: list[str] = []

    if as_kind == "numeric":
        statistic = _numeric_statistic(test, ref_num, cur_num)
        feature_psi = psi_numeric(ref_num, cur_num)
        hist = _numeric_histogram(ref_num, cur_num)
    else:
        if kind == "numeric":  # few distinct numbers: compare them as categories
            ref_lab = pd.Series(ref_num).map("{:g}".format)
            cur_lab = pd.Series(cur_num).map("{:g}".format)
        keys, r, c = _category_counts(ref_lab, cur_lab)
        statistic = _categorical_statistic(test, r, c)
        feature_psi = psi(_shares(r), _shares(c)) if r.sum() and c.sum() else float("nan")
        new_categories = sorted(str(k) for k, rv, cv in zip(keys, r, c, strict=True)
                                if rv == 0 and cv > 0)
        hist = _category_histogram(keys, r, c)

    threshold = (options.p_value_threshold if test in P_VALUE_TESTS
                 else options.distance_threshold)
    score = _severity(test, statistic, threshold)
    missing_drifted = abs(miss_cur - miss_ref) >= options.missing_rate_threshold
    return FeatureDrift(
        feature=name, kind=as_kind, test=test, statistic=statistic, threshold=threshold,
        drifted=bool(score >= 1.0 or missing_drifted), score=score, psi=feature_psi,
        missing_reference=miss_ref, missing_current=miss_cur, missing_drifted=missing_drifted,
        new_categories=new_categories, n_reference=n_ref, n_current=n_cur, histogram=hist,
    )


def _numeric_statistic(test: str, ref: np.ndarray, cur: np.ndarray) -> float:
    if len(ref) == 0 or len(cur) == 0:
        return float("nan")
    if test == "ks":
        return float(stats.ks_2samp(ref, cur).pvalue)
    if test == "wasserstein":
        # Normed by the reference's spread so one threshold fits every unit (Evidently's rule,
        # with its floor for a constant reference).
        return float(stats.wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001))
    raise ValueError(f"test {test!r} does not apply to a numeric feature")


def _categorical_statistic(test: str, r: np.ndarray, c: np.ndarray) -> float:
    if r.sum() == 0 or c.sum() == 0:
        return float("nan")
    if test == "jensenshannon":
        return float(jensenshannon(_shares(r), _shares(c)))
    if test in ("chisquare", "z"):
        if len(r) < 2:  # one value on both sides: identical distributions
            return 1.0
        # Homogeneity of the two samples over the categories (new categories included). For a
        # binary feature the uncorrected 2x2 chi-squared test is exactly the two-proportion
        # z-test (chi2 = z^2, same p-value).
        table = np.vstack([r, c])
        return float(stats.chi2_contingency(table, correction=False).pvalue)
    raise ValueError(f"test {test!r} does not apply to a categorical feature")


def _severity(test: str, statistic: float, threshold: float) -> float:
    if not math.isfinite(statistic):
        return 0.0
    if test in P_VALUE_TESTS:
        # log scale: 1.0 at the threshold, 2.0 at threshold squared (p = 0.0025 for 0.05)
        return math.log(max(statistic, 1e-300)) / math.log(threshold)
    return statistic / threshold


# -- the dataset ------------------------------------------------------------------------------


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    kinds: Mapping[str, str] | None = None,
    importance: Mapping[str, float] | None = None,
    options: DriftOptions = DriftOptions(),
    prediction_column: str | None = None,
    label_column: str | None = None,
    features: Sequence[str] | None = None,
    prediction_kind: str = "numeric",
) -> DriftResult:
    """Compare ``current`` with ``reference`` feature by feature and give the verdict.

    ``kinds`` maps a feature to numeric | categorical | boolean (inferred from the reference's
    dtype where absent). ``importance`` (feature -> importance) names the top features whose
    drift alone marks the dataset drifted. The prediction and label columns, where given and
    present on both sides, are compared too but do not count towards the share (a multi-class
    model's prediction is its predicted class: ``prediction_kind="categorical"``).
    """
    kinds = dict(kinds or {})
    special = {prediction_column, label_column} - {None}
    if features is None:
        features = [c for c in reference.columns if c in current.columns and c not in special]
    missing = [c for c in features if c not in current.columns or c not in reference.columns]
    if missing:
        raise KeyError(f"features missing from the current or reference data: {missing}")
    ranked = sorted((importance or {}).items(), key=lambda kv: -kv[1])
    top = [f for f, v in ranked if f in set(features) and v > 0][: options.top_features]

    results = [compare_feature(f, reference[f], current[f], kinds.get(f), options)
               for f in features]
    results = [_mark_important(r, r.feature in top) for r in results]
    results.sort(key=lambda r: (-r.score, r.feature))
    n_drifted = sum(r.drifted for r in results)
    share = n_drifted / len(results) if results else 0.0

    reasons: list[str] = []
    if results and share >= options.share_threshold:
        reasons.append(f"{n_drifted} of {len(results)} features drifted "
                       f"({share:.0%} >= {options.share_threshold:.0%})")
    drifted_top = [r.feature for r in results if r.important and r.drifted]
    if drifted_top:
        reasons.append(f"top feature(s) by importance drifted: {', '.join(drifted_top)}")

    def special_column(col: str | None, kind: str) -> FeatureDrift | None:
        present = bool(col) and col in reference.columns and col in current.columns
        if present and reference[col].notna().any() and current[col].notna().any():
            return compare_feature(col, reference[col], current[col], kind, options)
        return None

    return DriftResult(
        features=results, share_drifted=share, share_threshold=options.share_threshold,
        top_features=top, dataset_drifted=bool(reasons), reasons=reasons,
        n_reference=len(reference), n_current=len(current),
        prediction=special_column(prediction_column, prediction_kind),
        label=special_column(label_column, "categorical"),
    )


def _mark_important(result: FeatureDrift, important: bool) -> FeatureDrift:
    return replace(result, important=True) if important else result
