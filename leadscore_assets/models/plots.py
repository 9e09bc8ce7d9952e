"""Plots a person opens to judge a model: ROC, precision-recall, calibration, importance,
and the confusion matrix of a multi-class model. Written as PNG files (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and in runs

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    ConfusionMatrixDisplay,
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def roc_plot(y: np.ndarray, proba: np.ndarray, path: Path, title: str = "") -> Path:
    fpr, tpr, _ = roc_curve(y, proba)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, label=f"ROC-AUC {roc_auc_score(y, proba):.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC {title}")
    ax.legend(loc="lower right")
    return _save(fig, path)


def pr_plot(y: np.ndarray, proba: np.ndarray, path: Path, title: str = "") -> Path:
    precision, recall, _ = precision_recall_curve(y, proba)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(recall, precision, label=f"PR-AUC {average_precision_score(y, proba):.3f}")
    ax.axhline(np.mean(y), linestyle="--", color="grey", label="base rate")
    ax.set(xlabel="recall", ylabel="precision", title=f"Precision-recall {title}")
    ax.legend(loc="upper right")
    return _save(fig, path)


def calibration_plot(y: np.ndarray, proba: np.ndarray, path: Path, title: str = "") -> Path:
    observed, predicted = calibration_curve(y, proba, n_bins=10, strategy="quantile")
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(predicted, observed, marker="o", label="model")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    ax.set(xlabel="predicted probability", ylabel="observed rate", title=f"Calibration {title}")
    ax.legend(loc="upper left")
    return _save(fig, path)


def importance_plot(importance: dict[str, float], path: Path, title: str = "",
                    top: int = 20) -> Path:
    items = list(importance.items())[:top][::-1]
    fig, ax = plt.subplots(figsize=(7, max(3, 0.3 * len(items) + 1)))
    ax.barh([k for k, _ in items], [v for _, v in items])
    ax.set(xlabel="share of total gain", title=f"Feature importance {title}")
    return _save(fig, path)


def confusion_plot(y: np.ndarray, proba: np.ndarray, classes: list[str], path: Path,
                   title: str = "") -> Path:
    fig, ax = plt.subplots(figsize=(6, 5))
    ConfusionMatrixDisplay.from_predictions(y, np.argmax(proba, axis=1),
                                            labels=list(range(len(classes))),
                                            display_labels=classes, ax=ax, colorbar=False)
    ax.set_title(f"Confusion matrix {title}")
    return _save(fig, path)


def model_plots(trained, directory: str | Path) -> list[Path]:
    """Every plot that fits a ``TrainedModel``'s task, on its held-out rows."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    bundle = trained.bundle
    y, proba = trained.holdout_labels, trained.holdout_proba
    name = bundle.metadata.get("name", "")
    paths = [importance_plot(bundle.metadata.get("feature_importance", {}),
                             directory / "feature_importance.png", name)]
    if bundle.task == "binary":
        paths += [roc_plot(y, proba, directory / "roc.png", name),
                  pr_plot(y, proba, directory / "precision_recall.png", name),
                  calibration_plot(y, proba, directory / "calibration.png", name)]
    else:
        paths.append(confusion_plot(y, proba, bundle.classes,
                                    directory / "confusion_matrix.png", name))
    return paths
