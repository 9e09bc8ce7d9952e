"""Realised performance: what the served models predicted, against what then happened.

Pure functions (pandas, scikit-learn). The outcome of a prediction is known only once its
window has closed:

- a scored lead converted if it paid (a succeeded payment with its email) within the lead
  window; the lead features already hold that label (``converted``, ``label_source`` other
  than ``open``), so a lead prediction is joined to its lead by id or email;
- a customer scored for churn churned if they bought nothing in the horizon after the
  prediction; only predictions whose horizon ended before the latest data are judged;
- a plan recommended to a lead is judged once the lead has bought a plan (the plan model's
  own label, ``features.plan_labels``): the outcome is the plan bought.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, roc_auc_score

from leadscore_core.shadow import SHADOW_KEY, json_object

CALIBRATION_BINS = 10
PROBABILITY_KEYS = ("probability", "conversion_probability", "churn_probability")
ID_KEYS = ("id", "lead_id", "customer_id", "email")


def served_probabilities(predictions: pd.DataFrame) -> pd.DataFrame:
    """Raw prediction log rows -> ``predicted_at, model, version, subject, probability,
    challenger_version, challenger_probability``.

    ``subject`` is the id the caller sent (lower-cased: emails identify leads); rows without
    a probability (e.g. plan recommendations) or an id are left out. The challenger columns
    hold the answer of a challenger scored in the shadow (``leadscore_core.shadow``), or None.
    """
    rows = []
    for rec in predictions.itertuples(index=False):
        inputs = json_object(rec.inputs)
        outputs = json_object(rec.outputs)
        p = next((outputs[k] for k in PROBABILITY_KEYS if outputs.get(k) is not None), None)
        subject = subject_of(inputs)
        if p is None or subject is None:
            continue
        shadow = outputs.get(SHADOW_KEY)
        shadow = shadow if isinstance(shadow, dict) else {}
        rows.append((rec.predicted_at, rec.model, str(rec.version),
                     subject, float(p),
                     None if shadow.get("version") is None else str(shadow["version"]),
                     None if shadow.get("probability") is None else float(shadow["probability"])))
    return pd.DataFrame(rows, columns=["predicted_at", "model", "version", "subject",
                                       "probability", "challenger_version",
                                       "challenger_probability"])


def subject_of(inputs: dict) -> str | None:
    """The id a caller sent with a prediction, lower-cased (emails identify leads)."""
    subject = next((inputs[k] for k in ID_KEYS if inputs.get(k) not in (None, "")), None)
    return None if subject is None else str(subject).strip().lower()


def served_plans(predictions: pd.DataFrame) -> pd.DataFrame:
    """Raw prediction log rows -> the plans recommended: ``predicted_at, model, version,
    subject, plan, challenger_version, challenger_plan`` (rows without a plan or an id are
    left out; the challenger columns are None where no challenger answered in the shadow)."""
    rows = []
    for rec in predictions.itertuples(index=False):
        outputs = json_object(rec.outputs)
        subject = subject_of(json_object(rec.inputs))
        if outputs.get("plan") is None or subject is None:
            continue
        shadow = outputs.get(SHADOW_KEY)
        shadow = shadow if isinstance(shadow, dict) else {}
        rows.append((rec.predicted_at, rec.model, str(rec.version), subject,
                     str(outputs["plan"]),
                     None if shadow.get("version") is None else str(shadow["version"]),
                     None if shadow.get("plan") is None else str(shadow["plan"])))
    return pd.DataFrame(rows, columns=["predicted_at", "model", "version", "subject", "plan",
                                       "challenger_version", "challenger_plan"])


def _by_lead(known: pd.DataFrame, values: pd.Series) -> dict[str, object]:
    """Each known lead's value, keyed by its email and its id, lower-cased (the id wins over
    an email that repeats)."""
    by_key: dict[str, object] = {}
    for col in ("email", "lead_id"):
        if col in known:
            keys = known[col].astype("string").str.strip().str.lower()
            by_key.update({k: v for k, v in zip(keys, values, strict=True)
                           if k is not pd.NA and k})
    return by_key


def lead_outcomes(served: pd.DataFrame, lead_features: pd.DataFrame) -> pd.DataFrame:
    """Lead predictions whose lead has a known outcome, with ``outcome`` (converted)."""
    known = lead_features[lead_features["converted"].notna()]
    if "label_source" in known:
        known = known[known["label_source"].astype("string") != "open"]
    by_key = _by_lead(known, known["converted"].astype(bool))
    out = served.assign(outcome=served["subject"].map(by_key))
    return out[out["outcome"].notna()].assign(outcome=lambda d: d["outcome"].astype(bool))


def plan_outcomes(served: pd.DataFrame, plan_labels: pd.DataFrame) -> pd.DataFrame:
    """Plan recommendations (:func:`served_plans`) whose lead has bought a plan, with
    ``outcome``: the plan bought."""
    by_key = _by_lead(plan_labels, plan_labels["plan"].astype("string"))
    out = served.assign(outcome=served["subject"].map(by_key))
    return out[out["outcome"].notna()].reset_index(drop=True)


def churn_outcomes(served: pd.DataFrame, activity: pd.DataFrame, horizon_days: int,
                   as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """Churn predictions judged by later activity: ``outcome`` True when no activity followed.

    ``activity`` has ``subject`` (customer id or email, lower-cased) and ``at`` (a purchase
    or a succeeded payment). A prediction is judged once ``predicted_at + horizon`` is no
    later than ``as_of`` (default: the latest activity), so open horizons are never counted
    as churn.
    """
    if served.empty:
        return served.assign(outcome=pd.Series(dtype=bool))
    at = pd.to_datetime(activity["at"])
    as_of = as_of if as_of is not None else (at.max() if len(at) else None)
    if as_of is None or pd.isna(as_of):
        return served.iloc[0:0].assign(outcome=pd.Series(dtype=bool))
    predicted_at = _naive(served["predicted_at"])
    end = predicted_at + pd.Timedelta(days=horizon_days)
    judged = served[(end <= as_of).to_numpy()].copy()
    judged["_start"] = predicted_at[(end <= as_of).to_numpy()].to_numpy()
    judged["_end"] = judged["_start"] + pd.Timedelta(days=horizon_days)
    events = pd.DataFrame({"subject": activity["subject"].astype("string").str.strip()
                           .str.lower(), "at": _naive(at)})
    pairs = judged.reset_index().merge(events, on="subject", how="left")
    inside = (pairs["at"] > pairs["_start"]) & (pairs["at"] <= pairs["_end"])
    active = pairs.loc[inside.fillna(False).to_numpy(), "index"].unique()
    judged["outcome"] = ~judged.index.isin(active)
    return judged.drop(columns=["_start", "_end"])


def _naive(values: pd.Series) -> pd.Series:
    ts = pd.to_datetime(values, utc=True)
    return ts.dt.tz_convert("UTC").dt.tz_localize(None)


def performance_by_version(judged: pd.DataFrame, bins: int = CALIBRATION_BINS
                           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per model and version: ROC-AUC, Brier score and calibration of what was served.

    Returns ``(summary, calibration)``. The summary has one row per (model, version) with
    ``predictions, positives, mean_predicted, observed_rate, roc_auc, brier``; ``roc_auc`` is
    NaN while only one outcome has been seen. Calibration bins predictions into ``bins``
    equal-width probability bins and compares the mean predicted probability with the
    observed rate in each.
    """
    summary_rows, calib_rows = [], []
    for (model, version), g in judged.groupby(["model", "version"], sort=True):
        y = g["outcome"].astype(bool).to_numpy()
        p = g["probability"].astype(float).to_numpy()
        auc = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")
        summary_rows.append({
            "model": model, "version": version, "predictions": len(g),
            "positives": int(y.sum()), "mean_predicted": float(p.mean()),
            "observed_rate": float(y.mean()), "roc_auc": auc,
            "brier": float(brier_score_loss(y, p)) if len(np.unique(y)) == 2 else float(
                np.mean((p - y) ** 2)),
        })
        idx = np.minimum((p * bins).astype(int), bins - 1)
        for b in np.unique(idx):
            m = idx == b
            calib_rows.append({
                "model": model, "version": version,
                "bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}", "predictions": int(m.sum()),
                "mean_predicted": float(p[m].mean()), "observed_rate": float(y[m].mean()),
            })
    summary = pd.DataFrame(summary_rows, columns=["model", "version", "predictions",
                                                  "positives", "mean_predicted",
                                                  "observed_rate", "roc_auc", "brier"])
    calibration = pd.DataFrame(calib_rows, columns=["model", "version", "bin", "predictions",
                                                    "mean_predicted", "observed_rate"])
    return summary, calibration


OVER_TIME_COLUMNS = ["model", "window_start", "window_end", "versions", "predictions",
                     "positives", "roc_auc", "estimated_roc_auc", "estimated_low",
                     "estimated_high"]


def window_frequency(predicted_at: pd.Series) -> str:
    """Calendar weeks, or months once the predictions span more than half a year."""
    span = predicted_at.max() - predicted_at.min() if len(predicted_at) else pd.Timedelta(0)
    return "M" if span > pd.Timedelta(days=183) else "W-SUN"  # weeks from Monday


def performance_over_time(judged: pd.DataFrame, freq: str | None = None) -> pd.DataFrame:
    """Per model and calendar window of prediction time (a week, or a month when that
    model's predictions span more than half a year): realised ROC-AUC of the predictions
    made in it against their outcomes, and beside it the ROC-AUC estimated from their
    probabilities alone (confidence-based, ``leadscore_core.estimation``) with its interval,
    so the estimate can be read against what then happened. ``roc_auc`` is NaN for a window
    with one kind of outcome only."""
    from leadscore_core.estimation import estimate

    if judged.empty:
        return pd.DataFrame(columns=OVER_TIME_COLUMNS)
    at = pd.to_datetime(judged["predicted_at"])
    windows = pd.Series(index=judged.index, dtype=object)
    for _, mine in at.groupby(judged["model"]):  # each model's windows by its own span
        windows[mine.index] = mine.dt.to_period(freq or window_frequency(mine))
    rows = []
    for (model, window), g in judged.groupby([judged["model"], windows], sort=True):
        y = g["outcome"].astype(bool).to_numpy()
        p = g["probability"].astype(float).to_numpy()
        guess = estimate(p, np.zeros(len(p), dtype=bool))["roc_auc"]
        rows.append({
            "model": model, "window_start": window.start_time.date().isoformat(),
            "window_end": window.end_time.date().isoformat(),  # the window's last day
            "versions": ", ".join(sorted({str(v) for v in g["version"]})),
            "predictions": len(g), "positives": int(y.sum()),
            "roc_auc": float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan"),
            "estimated_roc_auc": guess.value, "estimated_low": guess.low,
            "estimated_high": guess.high})
    return pd.DataFrame(rows, columns=OVER_TIME_COLUMNS)


def stack(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=["predicted_at", "model", "version", "subject",
                                     "probability", "outcome"])
    return pd.concat(frames, ignore_index=True)
