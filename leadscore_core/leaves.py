"""The leaf every row of a batch reaches in every tree, found with table look-ups.

Path attribution (``leadscore_core.explain``) needs, per row, the leaf it reaches in each
tree. LightGBM's ``predict(pred_leaf=True)`` walks the trees row by row behind a Python call
that costs more than the walk for a small batch: on the served lead model (242 trees of 7
leaves) about 13 us a row, most of a 100-lead request's scoring.

This finds all leaves of a batch at once, in the manner of QuickScorer (Lucchese et al.,
SIGIR 2015): each tree's leaves are bits of one integer. A split on feature ``f`` that a row
answers "left" rules out the leaves of its right subtree, and "right" those of its left
subtree; whichever way, the one leaf left standing after every split of every feature has
ruled out its share is the leaf the row reaches. Per feature, the values between two
consecutive split points answer every split on that feature alike, so the bits each such
interval leaves standing, for all trees at once, are worked out when the model loads. A batch
then costs one ``searchsorted`` per feature, one gather of the tables and one AND over the
features.

The decisions are LightGBM's own (``Tree::NumericalDecision`` and ``CategoricalDecision``,
values within ``kZeroThreshold`` of zero read as zero as its dense-row reader does), and
``TreeLeaves.matches`` checks them against ``pred_leaf`` on probe rows around every split
point; a model that does not agree, or whose trees have more than 64 leaves, keeps
LightGBM's own walk.

No Dagster imports: the API imports this module.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# LightGBM's kZeroThreshold (1e-35f, a float literal): closer to zero than this is zero
ZERO = float(np.float32(1e-35))
_MAX_LEAVES = 64
CHUNK_ROWS = 1024


def _dtype_for(leaves: int) -> type:
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        if leaves <= np.iinfo(dtype).bits:
            return dtype
    raise ValueError(f"trees of {leaves} leaves do not fit a 64-bit mask")


class TreeLeaves:
    """Leaf indices, (rows, trees), of a LightGBM model: its dump (``booster.dump_model()``)
    and its text (``booster.model_to_string()``), whose thresholds are exact where the
    dump's are not (the dump writes an infinite threshold as 1e300)."""

    def __init__(self, dump: dict[str, Any], model_text: str, n_features: int):
        trees = dump["tree_info"]
        exact = _thresholds(model_text)
        if len(exact) != len(trees):
            raise ValueError("the model's text and dump do not have the same trees")
        most = max([max(1, int(t.get("num_leaves", 1))) for t in trees] or [1])
        if most > _MAX_LEAVES:
            raise ValueError(f"trees of {most} leaves do not fit a 64-bit mask")
        self.dtype = _dtype_for(most)
        self.n_trees = len(trees)
        self.n_features = n_features
        splits: list[list[Split]] = [[] for _ in range(n_features)]
        full = np.zeros(len(trees), dtype=self.dtype)
        for t, tree in enumerate(trees):
            full[t] = _leaf_bits(tree["tree_structure"], t, exact[t], splits)
        # per feature: its split points, and the rows of the table its values look up
        self.features = [j for j in range(n_features) if splits[j]]
        self.bounds: list[np.ndarray] = []
        offsets, tables = [], []
        rows = 0
        for j in self.features:
            bounds = _bounds(splits[j])
            reps = np.append(bounds, np.inf)  # each interval's upper end stands for it
            table = np.repeat(full[None, :], len(reps) + 1, axis=0)  # the last row: NaN
            for t, node, threshold, left, right in splits[j]:
                goes_left = np.append(_decide(node, threshold, reps),
                                      _decide(node, threshold, np.array([np.nan])))
                ruled_out = np.where(goes_left, self.dtype(right), self.dtype(left))
                table[:, t] &= ~ruled_out
            self.bounds.append(bounds)
            offsets.append(rows)
            tables.append(table)
            rows += len(table)
        self.table = (np.concatenate(tables) if tables
                      else np.repeat(full[None, :], 1, axis=0))
        self.offsets = np.asarray(offsets, dtype=np.intp)
        self.nan_rows = np.asarray([o + len(b) + 1 for o, b in zip(offsets, self.bounds,
                                                                  strict=True)], np.intp)
        self.full = full
        # a leaf's bit -> its index: a table for 8 bits, the float exponent beyond
        self._bit_index = (np.asarray([max(0, int(i).bit_length() - 1) for i in range(256)],
                                      dtype=np.int64) if self.dtype is np.uint8 else None)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """(rows, trees) leaf indices of the rows of ``X`` (float64, encoder columns)."""
        if len(X) <= CHUNK_ROWS:
            return self._chunk(X)
        # bounded memory: the gather is rows x features x trees
        return np.concatenate([self._chunk(X[i:i + CHUNK_ROWS])
                               for i in range(0, len(X), CHUNK_ROWS)])

    def _chunk(self, X: np.ndarray) -> np.ndarray:
        n = len(X)
        if not self.features:
            standing = np.repeat(self.full[None, :], n, axis=0)
        else:
            # features x rows: each feature's values and table rows are contiguous
            values = X.T[self.features]
            # as LightGBM's dense-row reader: values within kZeroThreshold of zero are zero
            values = np.where(np.abs(values) <= ZERO, 0.0, values)
            rows = np.empty(values.shape, dtype=np.intp)
            for k, bounds in enumerate(self.bounds):
                rows[k] = np.searchsorted(bounds, values[k], side="left")
            rows += self.offsets[:, None]
            missing = np.isnan(values)
            if missing.any():
                rows = np.where(missing, self.nan_rows[:, None], rows)
            standing = np.bitwise_and.reduce(self.table[rows], axis=0)
        if self._bit_index is not None:
            return self._bit_index[standing]
        return np.frexp(standing.astype(np.float64))[1].astype(np.int64) - 1

    def matches(self, booster: Any, X: np.ndarray | None = None, seed: int = 0) -> bool:
        """Whether these leaves are LightGBM's own on ``X`` and on probe rows drawn around
        every split point (each feature's value picked at random among them, NaN included)."""
        rng = np.random.default_rng(seed)
        probe = np.full((512, self.n_features), np.nan)
        for j, bounds in zip(self.features, self.bounds, strict=True):
            values = np.concatenate([bounds, np.nextafter(bounds, np.inf),
                                     np.nextafter(bounds, -np.inf), (bounds[:-1] + bounds[1:]) / 2,
                                     [np.nan, 0.0, -0.0, 1.0, -1.0, 1e-40, -1e-40, 1e300]])
            probe[:, j] = rng.choice(values, len(probe))
        if X is not None and len(X):
            probe = np.vstack([probe, np.asarray(X, dtype=np.float64)])
        theirs = np.asarray(booster.predict(probe, pred_leaf=True, num_threads=1),
                            dtype=np.int64).reshape(len(probe), -1)
        return bool(np.array_equal(self(probe), theirs))


# (tree, node of the dump, its exact threshold, bits of its left and right subtrees)
Split = tuple[int, dict, float, int, int]


def _thresholds(model_text: str) -> list[list[float]]:
    """Per tree, the thresholds of its splits by split index, from the model's text."""
    out: list[list[float]] = []
    for line in model_text.splitlines():
        if line.startswith("Tree="):
            out.append([])
        elif line.startswith("threshold=") and out:
            out[-1] = [float(v) for v in line[len("threshold="):].split()]
        elif line.startswith("end of trees"):
            break
    return out


def _leaf_bits(node: dict, t: int, thresholds: list[float], splits: list[list[Split]]
               ) -> int:
    """The bits of the leaves under ``node``; each split is recorded under its feature with
    the bits of its left and right subtrees."""
    if "split_feature" not in node:
        return 1 << int(node.get("leaf_index", 0))
    left = _leaf_bits(node["left_child"], t, thresholds, splits)
    right = _leaf_bits(node["right_child"], t, thresholds, splits)
    threshold = (float("nan") if node["decision_type"] == "=="
                 else thresholds[int(node["split_index"])])
    splits[int(node["split_feature"])].append((t, node, threshold, left, right))
    return left | right


def _categories(node: dict) -> list[int]:
    return [int(c) for c in str(node["threshold"]).split("||") if c != ""]


def _bounds(splits: list[Split]) -> np.ndarray:
    """Sorted points such that every split on the feature answers alike for all values in
    one interval ``(b[i-1], b[i]]``: its thresholds and zero (numeric splits), or each
    category's lower edge (categorical splits read ``int(value)``)."""
    # zero alone in its interval; values within kZeroThreshold of it are read as zero, so
    # the intervals up to -kZeroThreshold and above zero start beyond that band
    points = {0.0, float(np.nextafter(0.0, -np.inf)), float(np.nextafter(-ZERO, -np.inf))}
    top = 0  # the edges of codes 1 .. top, for the largest code any split names
    for _, node, threshold, _, _ in splits:
        if node["decision_type"] == "==":
            top = max(top, max(_categories(node) or [0]) + 1)
            points.add(-1.0)
        elif math.isfinite(threshold):  # values above +inf do not exist: one interval less
            points.add(threshold)
    points.update(np.nextafter(np.arange(1, top + 1, dtype=np.float64), -np.inf).tolist())
    return np.asarray(sorted(points), dtype=np.float64)


def _decide(node: dict, threshold: float, values: np.ndarray) -> np.ndarray:
    """Whether each value goes left at this split, as LightGBM decides it."""
    missing = np.isnan(values)
    if node["decision_type"] == "==":
        # NaN and negative codes go right; a code goes left when it is in the split's set
        safe = np.where(missing | ~np.isfinite(values), -1.0, values)
        codes = np.trunc(safe)
        inside = np.isin(codes, np.asarray(_categories(node), dtype=np.float64))
        return np.where(missing | ~np.isfinite(values) | (codes < 0), False, inside)
    default_left = bool(node.get("default_left", False))
    kind = str(node.get("missing_type", "None"))
    if kind == "NaN":
        return np.where(missing, default_left, values <= threshold)
    as_zero = np.where(missing, 0.0, values)  # NaN reads as zero unless NaN is the missing
    if kind == "Zero":
        return np.where(np.abs(as_zero) <= ZERO, default_left, as_zero <= threshold)
    return as_zero <= threshold

