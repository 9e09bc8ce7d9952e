"""Performance estimated before the labels arrive, from the model's calibrated probabilities.

Confidence-based performance estimation (the method NannyML calls CBPE): when a model's
probabilities are calibrated, a row scored ``p`` is a positive with probability ``p``. So the
confusion matrix at any threshold has an expected value without a single label: the expected
true positives above a threshold are the sum of the probabilities above it, the expected false
positives the sum of their complements. From those:

- **ROC-AUC**: expected TPR and FPR at every distinct probability, integrated (trapezoids);
- **precision in the top tier**: the mean probability of the rows in the top tier;
- **positive rate** (calibration in the large): the mean probability;
- **Brier score**: the expected squared error, the mean of ``p (1 - p)``.

What the labels will show when they arrive is a random draw around these figures, and the
smaller the window, the wider. The interval given with each estimate is that spread: labels
are drawn ``draws`` times from the probabilities themselves (a parametric bootstrap) and the
realised metric of each draw computed; the interval holds the middle ``level`` of them. The
realised figure falls outside it when the window is small and unlucky (rarely, by
construction) or when the probabilities have stopped being calibrated, which is the one thing
the method cannot see: a change in how features relate to the outcome, with the features
themselves unchanged, shows only in realised performance.

Pure functions (numpy, scipy, scikit-learn); no Dagster imports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METRICS = ("roc_auc", "top_tier_precision", "positive_rate", "brier")
DRAWS = 400
LEVEL = 0.95
MAX_DRAW_CELLS = 20_000_000  # draws x rows held in memory at once


@dataclass(frozen=True)
class Estimate:
    """One estimated metric, the interval the realised figure should fall in, and the rows."""

    metric: str
    value: float
    low: float
    high: float
    rows: int

    def contains(self, realised: float) -> bool:
        return bool(self.low <= realised <= self.high)


def expected_roc_auc(probability: np.ndarray) -> float:
    """ROC-AUC from the expected confusion matrix at every distinct probability.

    NaN when the probabilities expect no positives or no negatives (all 0, or all 1).
    """
    from sklearn.metrics import auc  # here: the API imports this module for its summaries

    p = np.asarray(probability, dtype=np.float64)
    if p.size == 0:
        return float("nan")
    p = np.sort(p)[::-1]
    tp = np.cumsum(p)
    fp = np.cumsum(1.0 - p)
    if tp[-1] <= 0 or fp[-1] <= 0:
        return float("nan")
    # the curve moves only where the threshold passes a distinct probability (ties together)
    last = np.r_[np.flatnonzero(np.diff(p)), p.size - 1]
    tpr = np.r_[0.0, tp[last] / tp[-1]]
    fpr = np.r_[0.0, fp[last] / fp[-1]]
    return float(auc(fpr, tpr))


def point_estimates(probability: np.ndarray, top_tier: np.ndarray) -> dict[str, float]:
    """The four estimated metrics (``top_tier``: a boolean mask of the rows in the top tier)."""
    p = np.asarray(probability, dtype=np.float64)
    top = np.asarray(top_tier, dtype=bool)
    return {
        "roc_auc": expected_roc_auc(p),
        "top_tier_precision": float(p[top].mean()) if top.any() else float("nan"),
        "positive_rate": float(p.mean()) if p.size else float("nan"),
        "brier": float(np.mean(p * (1.0 - p))) if p.size else float("nan"),
    }


def realised_metrics(probability: np.ndarray, outcome: np.ndarray,
                     top_tier: np.ndarray) -> dict[str, float]:
    """The same four metrics from the outcomes (the figures the estimates stand in for)."""
    p = np.asarray(probability, dtype=np.float64)
    y = np.asarray(outcome, dtype=bool)
    draws = _draw_metrics(p, y[None, :], np.asarray(top_tier, dtype=bool))
    return {name: float(values[0]) for name, values in draws.items()}


def rank_roc_auc(ranks: np.ndarray, outcomes: np.ndarray) -> np.ndarray:
    """ROC-AUC by the rank-sum (Mann-Whitney) identity, ties at half (the value of
    ``sklearn.metrics.roc_auc_score``): ``ranks`` of the scores (``scipy.stats.rankdata``),
    ``outcomes`` one row of 0/1 per draw. NaN where a draw holds a single class."""
    y = np.atleast_2d(np.asarray(outcomes, dtype=np.float64))
    positives = y.sum(axis=1)
    negatives = ranks.size - positives
    with np.errstate(invalid="ignore", divide="ignore"):
        roc = (y @ ranks - positives * (positives + 1) / 2) / (positives * negatives)
    return np.where((positives > 0) & (negatives > 0), roc, np.nan)


def _draw_metrics(p: np.ndarray, outcomes: np.ndarray, top: np.ndarray
                  ) -> dict[str, np.ndarray]:
    """Each metric for each row of ``outcomes`` (draws x rows, boolean), vectorised.

    ROC-AUC by the rank-sum (Mann-Whitney) identity, ties at half: the probabilities, and so
    their ranks, are the same in every draw.
    """
    from scipy.stats import rankdata

    y = outcomes.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = (y[:, top].mean(axis=1) if top.any()
                     else np.full(len(y), np.nan))
    return {
        "roc_auc": rank_roc_auc(rankdata(p), y),
        "top_tier_precision": precision,
        "positive_rate": y.mean(axis=1),
        "brier": ((y - p[None, :]) ** 2).mean(axis=1),
    }


def estimate(probability: np.ndarray, top_tier: np.ndarray, draws: int = DRAWS,
             level: float = LEVEL, seed: int = 0) -> dict[str, Estimate]:
    """Estimated metrics with the interval the realised figure should fall in.

    ``probability``: calibrated probabilities of the positive class on the window;
    ``top_tier``: which rows are in the top tier (tier A, High risk). The interval comes from
    ``draws`` sets of labels drawn from the probabilities (fixed ``seed``: the same window
    always gets the same interval).
    """
    p = np.asarray(probability, dtype=np.float64)
    top = np.asarray(top_tier, dtype=bool)
    if p.shape != top.shape:
        raise ValueError(f"probability {p.shape} and top_tier {top.shape} differ in shape")
    values = point_estimates(p, top)
    if p.size == 0:
        return {m: Estimate(m, float("nan"), float("nan"), float("nan"), 0) for m in METRICS}
    rng = np.random.default_rng(seed)
    per_batch = max(1, MAX_DRAW_CELLS // p.size)
    collected: dict[str, list[np.ndarray]] = {m: [] for m in METRICS}
    for start in range(0, draws, per_batch):
        n = min(per_batch, draws - start)
        outcomes = rng.random((n, p.size)) < p[None, :]
        for name, drawn in _draw_metrics(p, outcomes, top).items():
            collected[name].append(drawn)
    tail = (1.0 - level) / 2
    out = {}
    for name in METRICS:
        drawn = np.concatenate(collected[name])
        drawn = drawn[np.isfinite(drawn)]
        low, high = ((float(np.quantile(drawn, tail)), float(np.quantile(drawn, 1 - tail)))
                     if drawn.size else (float("nan"), float("nan")))
        out[name] = Estimate(name, values[name], low, high, int(p.size))
    return out


def figure_text(e: dict | None) -> str:
    """A saved estimate (``value``, ``low``, ``high``) as ``0.781 [0.760, 0.801]``."""
    if not e or e.get("value") is None:
        return "n/a"
    bounds = "" if e.get("low") is None else f" [{e['low']:.3f}, {e['high']:.3f}]"
    return f"{e['value']:.3f}{bounds}"


def metric_names(top_tier: str = "the top tier") -> dict[str, str]:
    return {"roc_auc": "ROC-AUC", "top_tier_precision": f"precision in {top_tier}",
            "positive_rate": "positive rate", "brier": "Brier score"}


def summary_rows(summary: dict) -> list[tuple[str, str, str]]:
    """(metric, the window's estimate, the held-out rows' estimate) of a saved estimate."""
    window, held_out = summary.get("window", {}), summary.get("held_out", {})
    return [(name, figure_text(window.get(metric)), figure_text(held_out.get(metric)))
            for metric, name in metric_names(summary.get("top_tier", "the top tier")).items()]


def realised_rows(summary: dict) -> list[dict]:
    """The ROC-AUC rows of estimate against realised, per served version with outcomes."""
    return [r for r in summary.get("estimate_vs_realised", [])
            if r.get("metric") == "roc_auc" and r.get("realised") is not None]


def summary_lines(summary: dict) -> list[str]:
    """A saved estimate (``<model>_estimated.json``) as lines for a person: the window's
    estimates against the held-out rows', then estimate against realised per served version."""
    lines = [f"  estimated on {summary.get('window_rows', 0):,} window rows: "
             f"{summary.get('verdict', '')}"]
    for name, window, held_out in summary_rows(summary):
        lines.append(f"    {name:<28} {window:<24} held out {held_out}")
    for row in realised_rows(summary):
        inside = "within" if row.get("within_interval") else "OUTSIDE"
        lines.append(f"    v{row['version']} served, outcomes known for {row['rows']:,}: "
                     f"realised ROC-AUC {row['realised']:.3f}, estimated "
                     f"{row['estimated']:.3f} [{row['low']:.3f}, {row['high']:.3f}] ({inside})")
    return lines
