"""Which candidate a training registers: LightGBM, the logistic baseline, or a blend.

Every training fits three candidates on the same rows and encoder:

- ``logistic``: the scikit-learn baseline (one-hot categories, scaled numbers);
- ``lightgbm``: the cross-validated booster;
- ``blend``: ``w * lightgbm + (1 - w) * logistic`` in log-odds, ``w`` in ``BLEND_SHARES``
  chosen on the out-of-fold predictions (its reasons stay additive: each feature's
  contribution is the same weighted sum of both models' contributions).

The rule, in one place (``choose``): the candidates are ranked by their cross-validated
primary metric (ROC-AUC, macro-F1 for a multi-class model) on the out-of-fold predictions of
the same folds; the best is the nominee. The held-out rows then have the last word against
the simplest model: a candidate that scores below the logistic baseline on them is passed
over for the next one, so a model that loses to its own baseline is never registered as the
better one (the baseline itself always qualifies). Ties go to the simpler candidate.

No Dagster imports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score

from leadscore_core.explain import ABSENT_CLASS_LOGIT

# Simplest first: a tie in the ranking goes to the simpler candidate.
CANDIDATES = ("logistic", "lightgbm", "blend")
BLEND_SHARES = (0.25, 0.5, 0.75)  # LightGBM's share of the blend's log-odds


def primary_score(task: str, y: np.ndarray, raw: np.ndarray) -> float:
    """The gate's metric on raw scores: ROC-AUC (binary; any monotone link gives the same),
    macro-F1 of the arg-max class (multi-class)."""
    if task == "binary":
        return float(roc_auc_score(y, raw))
    labels = list(range(raw.shape[1]))
    return float(f1_score(y, np.argmax(raw, axis=1), labels=labels, average="macro",
                          zero_division=0))


def linear_decision(pipeline, task: str, n_classes: int
                    ) -> Callable[[np.ndarray], np.ndarray]:
    """A fitted classifier pipeline's decision as (rows, classes) log-odds: one column for a
    binary model; every class of a multi-class one, a class absent from its training rows at
    ``ABSENT_CLASS_LOGIT``."""
    present = np.asarray(pipeline.classes_, dtype=int)

    def decision(X: np.ndarray) -> np.ndarray:
        d = np.asarray(pipeline.decision_function(X), dtype=np.float64)
        if task == "binary":
            return d.reshape(-1, 1)
        out = np.full((len(X), n_classes), ABSENT_CLASS_LOGIT)
        if d.ndim == 1:  # two classes seen: the decision is the second one's log-odds
            out[:, present[0]] = 0.0
            out[:, present[1]] = d
        else:
            out[:, present] = d
        return out

    return decision


def squeeze(task: str, raw: np.ndarray) -> np.ndarray:
    raw = np.asarray(raw, dtype=np.float64)
    return raw.reshape(len(raw), -1)[:, 0] if task == "binary" else raw.reshape(len(raw), -1)


@dataclass(frozen=True)
class Selection:
    """Which candidate won, on what figures, and a sentence that says so."""

    chosen: str
    nominee: str
    metric: str
    blend_share: float
    cv: dict[str, float]
    holdout: dict[str, float]
    reason: str

    @property
    def cv_margin(self) -> float:
        """The winner's cross-validated lead over the best other candidate."""
        others = [v for k, v in self.cv.items() if k != self.chosen]
        return self.cv[self.chosen] - max(others)

    @property
    def holdout_vs_baseline(self) -> float:
        """The winner's held-out lead over the logistic baseline (0 when it is the baseline)."""
        return self.holdout[self.chosen] - self.holdout["logistic"]

    def to_json(self) -> dict:
        return {**asdict(self), "cv_margin": self.cv_margin,
                "holdout_vs_baseline": self.holdout_vs_baseline}


def label(candidate: str, blend_share: float) -> str:
    if candidate == "blend":
        return f"blend ({blend_share:g} LightGBM + {1 - blend_share:g} logistic)"
    return candidate


def choose(metric: str, cv: Mapping[str, float], holdout: Mapping[str, float],
           blend_share: float) -> Selection:
    """The rule of the module docstring."""
    ranked = sorted(CANDIDATES, key=lambda c: -cv[c])  # stable: ties keep the simpler first
    nominee = ranked[0]
    baseline = holdout["logistic"]
    chosen = next(c for c in ranked if c == "logistic" or holdout[c] >= baseline)

    def name(c: str) -> str:
        return label(c, blend_share)

    runner = max((c for c in CANDIDATES if c != chosen), key=lambda c: cv[c])
    if chosen == nominee:
        reason = (f"{name(chosen)} won: cross-validated {metric} {cv[chosen]:.4f} against "
                  f"{name(runner)} {cv[runner]:.4f} ({cv[chosen] - cv[runner]:+.4f})")
    else:
        passed = ", ".join(f"{name(c)} {holdout[c]:.4f}" for c in ranked[:ranked.index(chosen)])
        reason = (f"{name(chosen)} won: {passed} led cross-validation but scored below the "
                  f"logistic baseline's held-out {metric} {baseline:.4f}")
    if chosen == "logistic":
        best_other = max((c for c in CANDIDATES if c != "logistic"), key=lambda c: holdout[c])
        reason += (f"; held-out {metric} {holdout[chosen]:.4f}, {name(best_other)} "
                   f"{holdout[best_other]:.4f}")
    else:
        reason += (f"; held-out {metric} {holdout[chosen]:.4f} against the baseline's "
                   f"{baseline:.4f} ({holdout[chosen] - baseline:+.4f})")
    return Selection(chosen=chosen, nominee=nominee, metric=metric, blend_share=blend_share,
                     cv={k: float(v) for k, v in cv.items()},
                     holdout={k: float(v) for k, v in holdout.items()}, reason=reason)
