"""Lead tiers (A to D) and churn risk levels (High, Medium, Low): the one rule for each.

The batch scores, the model bundle (its MLflow pyfunc) and the API all tier a score with
:func:`tiers_of` and give a churn probability its level with :func:`risk_rule`; a customer
scored by several churn models gets one level by :func:`customer_risk`.

``scores/leads`` tiers every open lead A to D by the quartiles of the current open leads'
scores, and publishes those three boundaries beside the serving snapshot (``lead_tiers.json``,
written to a temporary file and renamed into place) with the model name and version they were
computed for. The API tiers a posted lead by the same boundaries while it serves that version;
when the file is absent, unreadable, or for another version (a champion promoted since the
last batch scoring), it falls back to the boundaries stored in the model bundle (quartiles of
the held-out scores at training time).

No Dagster imports here: the API and the scores stage both use this module.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("leadscore.api")

LEAD_TIERS_FILE = "lead_tiers.json"
TIERS = ("A", "B", "C", "D")
RISK_LEVELS = ("High", "Medium", "Low")
# The churn models a customer can be scored by (``MODELS`` keys), in the order their columns
# appear and ``customer_risk`` breaks ties: purchase activity, then the account snapshot.
CHURN_MODELS = ("activity_churn", "snapshot_churn")


def quartile_boundaries(scores: np.ndarray | Sequence[float]) -> list[float]:
    """The three tier boundaries of a set of scores: their quartiles, ascending."""
    values = np.asarray(scores, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no scores to take quartiles of")
    return [float(q) for q in np.quantile(values, [0.25, 0.5, 0.75])]


def tiers_of(scores: np.ndarray | Sequence[float], bounds: np.ndarray | Sequence[float]
             ) -> list[str]:
    """A (top quartile) to D by three ascending boundaries; a score on a boundary belongs to
    the tier above."""
    if len(scores) == 1:  # one lead (the API's usual request): three comparisons, no numpy
        return [TIERS[3 - bisect.bisect_right(bounds, float(scores[0]))]]
    idx = np.searchsorted(np.asarray(bounds, dtype=np.float64),
                          np.asarray(scores, dtype=np.float64), side="right")
    return [TIERS[3 - i] for i in idx.tolist()]


def risk_rule(high: float, medium: float) -> Callable[[float], str]:
    """High at or above ``high``, Medium at or above ``medium``, else Low.

    The thresholds are ``LEADSCORE_CHURN_HIGH`` and ``LEADSCORE_CHURN_MEDIUM`` (the API) or the
    scores stage's run config; both decide through this one rule.
    """
    if not 0 <= medium <= high <= 1:
        raise ValueError(f"churn thresholds must satisfy 0 <= medium ({medium}) <= high "
                         f"({high}) <= 1")

    def risk(probability: float) -> str:
        if probability >= high:
            return "High"
        return "Medium" if probability >= medium else "Low"

    return risk


def customer_risk(probabilities: np.ndarray, models: Sequence[str], high: float,
                  medium: float) -> tuple[np.ndarray, list[str], list[str]]:
    """A customer's one churn risk level, whatever models score them (one row per customer).

    ``probabilities`` is (customers, models), NaN where a model does not know the customer.
    The customer's churn probability is the highest of their models' probabilities and the
    level is that probability's by :func:`risk_rule`: a customer one model sees leaving is
    at risk, whatever the other says. Returns the probability, the level and the model it
    comes from (the first listed wins a tie), per customer.
    """
    probability, top = riskiest(probabilities)
    risk = risk_rule(high, medium)
    return (probability, [risk(float(p)) for p in probability],
            [models[int(k)] for k in top])


def riskiest(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per customer (row), the highest of their models' churn probabilities (NaN where a model
    does not know them) and the column it comes from (the first wins a tie): the one choice
    of the model a customer's risk comes from, for the exports, the pages and the API."""
    values = np.asarray(probabilities, dtype=np.float64).reshape(len(probabilities), -1)
    known = ~np.isnan(values)
    if not known.any(axis=1).all():
        raise ValueError("every customer needs a probability from at least one model")
    filled = np.where(known, values, -np.inf)
    top = filled.argmax(axis=1)
    return filled[np.arange(len(filled)), top], top


def lead_tiers_path(serving_snapshot: Path) -> Path:
    """Where ``scores/leads`` publishes its boundaries: beside the serving snapshot."""
    return Path(serving_snapshot).parent / LEAD_TIERS_FILE


def lead_tiers_document(model: str, version: str, boundaries: list[float], *,
                        open_leads: int) -> dict[str, Any]:
    """The published document: three ascending scores (a score on a boundary belongs to the
    tier above), the model version they belong to, and how many leads they were taken from."""
    bounds = [float(b) for b in boundaries]
    if len(bounds) != 3 or bounds != sorted(bounds):
        raise ValueError(f"tier boundaries must be three ascending scores, got {boundaries}")
    return {"model": model, "version": str(version), "boundaries": bounds,
            "open_leads": int(open_leads),
            "computed_at": datetime.now(UTC).isoformat(timespec="seconds")}


class PublishedTiers:
    """The published boundaries, re-read when the file changes (mtime, inode or size).

    ``refresh`` runs off the request path (the API's background task); ``bounds_for`` is a
    dictionary look-up.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._stamp: tuple[int, int, int] | None = None
        self._current: tuple[str, str, np.ndarray] | None = None

    def refresh(self) -> bool:
        """Re-read the file if it changed; True when what is served changed."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            changed = self._current is not None
            self._stamp, self._current = None, None
            return changed
        stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            doc = json.loads(self.path.read_text())
            bounds = np.asarray([float(b) for b in doc["boundaries"]], dtype=np.float64)
            if bounds.shape != (3,) or np.any(np.diff(bounds) < 0):
                raise ValueError(f"boundaries {doc['boundaries']} are not three ascending scores")
            self._current = (str(doc["model"]), str(doc["version"]), bounds)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s: unreadable lead tier boundaries (%s); serving the model's own",
                        self.path, exc)
            self._current = None
        return True

    def bounds_for(self, model: str, version: str) -> np.ndarray | None:
        """The published boundaries if they belong to this model version, else None."""
        current = self._current
        if current is None or current[0] != model or current[1] != version:
            return None
        return current[2]
