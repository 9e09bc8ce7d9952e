"""The one change that would raise a score most, among the features a person can act on.

A source profile lists its ``actionable`` columns (a customer's auto-renewal, a lead's contact
channel). For one encoded row, :func:`best_change` tries every value each of them can take
that could change the model's answer and returns the change with the highest probability:

- a category or a flag: every value the model knows;
- a number: one value on each side of every split threshold the trees use for it (a tree
  model's answer only changes where a threshold is crossed, so nothing between them can do
  better).

All candidates are scored in one call, through the bundle's own calibrated probability.
"Raises" means the probability of the model's positive class: conversion for a lead. For churn
the best change is the one that *lowers* the probability most (``higher_is_better=False``).

No Dagster imports: the API uses this module.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from leadscore_core.serving import ModelBundle


@dataclass(frozen=True)
class Change:
    feature: str  # the export's column name
    value: object  # the value now
    change_to: object
    probability: float  # the probability after the change


def actionable_indices(bundle: ModelBundle, actionable: Iterable[str]) -> list[int]:
    """Encoder columns of the actionable features the model uses (by export or feature name)."""
    wanted = set(actionable)
    return [j for j, s in enumerate(bundle.encoder.specs)
            if s.original_name in wanted or s.name in wanted]


def split_thresholds(bundle: ModelBundle) -> dict[int, list[float]]:
    """Per encoder column, the numeric split thresholds of every tree (ascending)."""
    found: dict[int, set[float]] = {}

    def walk(node: dict) -> None:
        if "split_feature" not in node:
            return
        if node.get("decision_type") == "<=":
            found.setdefault(int(node["split_feature"]), set()).add(float(node["threshold"]))
        walk(node["left_child"])
        walk(node["right_child"])

    for tree in bundle.booster.dump_model()["tree_info"]:
        walk(tree["tree_structure"])
    return {j: sorted(t) for j, t in found.items()}


def candidate_values(bundle: ModelBundle, j: int, thresholds: dict[int, list[float]]
                     ) -> list[float]:
    spec = bundle.encoder.specs[j]
    if spec.kind == "categorical":
        return [float(i) for i in range(len(spec.categories or []))]
    if spec.kind == "boolean":
        return [0.0, 1.0]
    values = set()
    for t in thresholds.get(j, []):
        values.add(t)  # x <= t goes left
        values.add(float(np.nextafter(t, math.inf)))  # the least value that goes right
    return sorted(values)


def best_change(bundle: ModelBundle, x: np.ndarray, columns: list[int],
                thresholds: dict[int, list[float]], *, higher_is_better: bool = True
                ) -> Change | None:
    """The single change of one actionable column that moves the probability most in the
    wanted direction, or None when no change moves it at all."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    rows, changed = [], []
    for j in columns:
        for value in candidate_values(bundle, j, thresholds):
            if value == x[j]:
                continue
            row = x.copy()
            row[j] = value
            rows.append(row)
            changed.append((j, value))
    if not rows:
        return None
    proba = np.asarray(bundle.predict_proba(np.vstack([x, *rows])), dtype=np.float64)
    now, after = float(proba[0]), proba[1:]
    k = int(np.argmax(after) if higher_is_better else np.argmin(after))
    gain = after[k] - now if higher_is_better else now - after[k]
    if gain <= 1e-12:
        return None
    j, value = changed[k]
    spec = bundle.encoder.specs[j]
    return Change(spec.original_name, spec.decode(x[j]), spec.decode(value), float(after[k]))
