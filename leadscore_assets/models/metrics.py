"""Held-out metrics for the binary and multi-class models (scikit-learn underneath)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm

BINARY_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "lift_top_decile")
MULTICLASS_METRICS = ("accuracy", "macro_f1", "log_loss")
# Direction of "better", for model selection and the champion gate.
HIGHER_IS_BETTER = {"roc_auc": True, "pr_auc": True, "log_loss": False, "brier": False,
                    "lift_top_decile": True, "accuracy": True, "macro_f1": True}


def lift_top_decile(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Positive rate among the 10% highest-scored rows divided by the overall positive rate."""
    y_true = np.asarray(y_true, dtype=float)
    base = y_true.mean()
    if len(y_true) == 0 or base == 0:
        return float("nan")
    k = max(1, int(np.ceil(0.1 * len(y_true))))
    top = np.argsort(-np.asarray(proba), kind="stable")[:k]
    return float(y_true[top].mean() / base)


def binary_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    y_true = np.asarray(y_true).astype(int)
    proba = np.clip(np.asarray(proba, dtype=float), 1e-15, 1 - 1e-15)
    if len(np.unique(y_true)) < 2:
        raise ValueError("held-out labels hold a single class: ROC-AUC is undefined")
    return {
        "roc_auc": float(skm.roc_auc_score(y_true, proba)),
        "pr_auc": float(skm.average_precision_score(y_true, proba)),
        "log_loss": float(skm.log_loss(y_true, proba, labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y_true, proba)),
        "lift_top_decile": lift_top_decile(y_true, proba),
    }


def multiclass_metrics(y_true: np.ndarray, proba: np.ndarray,
                       n_classes: int | None = None) -> dict[str, float]:
    """``y_true`` holds class indices; ``proba`` is (n, classes)."""
    y_true = np.asarray(y_true).astype(int)
    proba = np.asarray(proba, dtype=float)
    labels: Sequence[int] = list(range(n_classes or proba.shape[1]))
    pred = np.argmax(proba, axis=1)
    return {
        "accuracy": float(skm.accuracy_score(y_true, pred)),
        "macro_f1": float(skm.f1_score(y_true, pred, labels=labels, average="macro",
                                       zero_division=0)),
        "log_loss": float(skm.log_loss(y_true, np.clip(proba, 1e-15, 1), labels=labels)),
    }


def evaluate(task: str, y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    if task == "binary":
        return binary_metrics(y_true, proba)
    return multiclass_metrics(y_true, proba)
