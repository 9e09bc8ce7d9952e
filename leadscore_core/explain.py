"""The one explainer: per-feature contributions to the raw score, for every kind of model.

Batch scores, CSV exports, the API and the pages all take their reasons from ``Explainer``,
so the same row gets the same reasons, with the same values, wherever it is scored. Per row
and class, ``base_value + sum(contributions) == raw score`` (log-odds for a binary model,
the softmax input of a class for a multi-class one).

Tree models: decision-path attribution (Saabas; XGBoost's ``approx_contribs``). Every split
hands the change in the node's expected value to the feature it splits on, so a tree's
contributions depend only on the leaf a row reaches: they are computed once per leaf when
the model loads, and a row asks for its leaves and adds up precomputed rows. One row asks
LightGBM (``pred_leaf`` through its single-row handle); a batch is looked up in tables
(``leadscore_core.leaves``: all rows and trees at once, several times faster than LightGBM's
walk, and checked against it when built). Per tree the steps telescope from the root's value
to the leaf's value, hence the identity above. Exact TreeSHAP (LightGBM's ``pred_contrib``)
was measured on the served lead model (242 trees, one row): median 99 us, p99 126 us, against
18 us / 37 us for path attribution; the API answers a scored lead in about 46 us of CPU, so
SHAP would have tripled it and cost the API its throughput target (at least half the no-op
rate).

Linear models (the logistic baseline): ``coef * (x - mean)`` in log-odds, per feature summed
over its design columns (one-hot categories, the scaled value and its missing indicator),
kept as a lookup table per category or a line per number. The base value is the mean
decision over the training rows, so a reason says how far this value moves the lead from
the average one, as a tree's does.

A blend is ``w * tree + (1 - w) * linear`` in log-odds, and so are its contributions.

No Dagster imports: the API imports this module.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from leadscore_core.fastrow import FastRow
    from leadscore_core.leaves import TreeLeaves
    from leadscore_core.serving import Encoder, Explanation, ModelBundle

log = logging.getLogger(__name__)

# The decision of a class the baseline never saw in training: its probability is nil.
ABSENT_CLASS_LOGIT = -1000.0


# -- the linear part ------------------------------------------------------------------------


@dataclass
class LinearPart:
    """A fitted linear classifier as per-feature lookups over the encoder's codes.

    ``base``: (classes,) mean decision on the training rows. Per feature, contributions of
    shape (classes,): a categorical feature has ``table`` (codes + 1, classes), the last row
    for a blank or unseen value; a numeric or boolean one has ``slope`` and ``offset``
    (contribution ``slope * x + offset``) and ``missing`` for a blank.
    """

    base: np.ndarray
    features: list[dict[str, np.ndarray]]

    @property
    def n_classes(self) -> int:
        return len(self.base)

    @classmethod
    def from_decision(cls, decision, encoder: Encoder, X_train: np.ndarray) -> LinearPart:
        """Read a fitted model's lookups off its ``decision`` function (rows -> (rows,
        classes) log-odds), which must be additive over the input columns, as a
        logistic regression on per-column transforms (one-hot, impute, scale) is.

        The decision of a row that is blank everywhere anchors each feature: the change when
        one feature alone takes a value is that feature's part. Centring each part on its
        training mean makes the base value the mean training decision.
        """
        n_features = len(encoder.specs)
        blank = np.full((1, n_features), np.nan)
        anchor = decision(blank)[0]
        features, base = [], anchor.copy()
        for j, spec in enumerate(encoder.specs):
            if spec.kind == "categorical":
                codes = np.append(np.arange(len(spec.categories or [])), np.nan)
                probe = np.repeat(blank, len(codes), axis=0)
                probe[:, j] = codes
                table = decision(probe) - anchor
                seen = X_train[:, j]
                rows = np.where(np.isnan(seen), len(codes) - 1, np.nan_to_num(seen)).astype(int)
                mean = table[rows].mean(axis=0)
                features.append({"table": table - mean})
            else:
                probe = np.repeat(blank, 2, axis=0)
                probe[:, j] = [0.0, 1.0]
                at0, at1 = decision(probe) - anchor
                slope, offset = at1 - at0, at0
                seen = X_train[:, j]
                present = ~np.isnan(seen)
                parts = np.where(present[:, None], seen[:, None] * slope + offset, 0.0)
                mean = parts.mean(axis=0)
                features.append({"slope": slope, "offset": offset - mean, "missing": -mean})
            base += mean
        return cls(base=base, features=features)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """(rows, classes, features): each feature's part of each class's decision."""
        n = len(X)
        out = np.empty((n, self.n_classes, len(self.features)))
        for j, part in enumerate(self.features):
            x = X[:, j]
            missing = np.isnan(x)
            if "table" in part:
                table = part["table"]
                rows = np.where(missing, len(table) - 1, np.nan_to_num(x)).astype(int)
                out[:, :, j] = table[rows]
            else:
                line = x[:, None] * part["slope"] + part["offset"]
                out[:, :, j] = np.where(missing[:, None], part["missing"], line)
        return out

    def raw(self, X: np.ndarray) -> np.ndarray:
        """(rows, classes) decisions."""
        return self.contributions(X).sum(axis=2) + self.base

    def row_binary(self, x: Sequence[float]) -> list[float]:
        """One row of a one-class model in plain Python (the API's single-lead path)."""
        out = []
        for value, part in zip(x, self._binary_parts(), strict=True):
            kind, a, b, missing = part
            if value != value:  # NaN
                out.append(missing)
            elif kind:
                out.append(a[int(value)])
            else:
                out.append(a * value + b)
        return out

    def _binary_parts(self) -> list[tuple[bool, Any, float, float]]:
        parts = getattr(self, "_parts", None)
        if parts is None:
            parts = []
            for part in self.features:
                if "table" in part:
                    column = part["table"][:, 0].tolist()
                    parts.append((True, column, 0.0, column[-1]))
                else:
                    parts.append((False, float(part["slope"][0]), float(part["offset"][0]),
                                  float(part["missing"][0])))
            self._parts = parts
        return parts

    def to_json(self) -> dict[str, Any]:
        return {"base": self.base.tolist(),
                "features": [{k: v.tolist() for k, v in part.items()}
                             for part in self.features]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LinearPart:
        return cls(base=np.asarray(data["base"], dtype=np.float64),
                   features=[{k: np.asarray(v, dtype=np.float64) for k, v in part.items()}
                             for part in data["features"]])


# -- the tree part --------------------------------------------------------------------------


class TreePaths:
    """Path contributions of every leaf of every tree, from the booster's own tree dump."""

    def __init__(self, booster, n_features: int):
        self.booster = booster
        dump = booster.dump_model()
        self.n_classes = max(1, int(dump.get("num_tree_per_iteration", 1)))
        trees = dump["tree_info"]
        self.offsets = np.zeros(len(trees), dtype=np.intp)
        self.tree_class = np.arange(len(trees)) % self.n_classes
        self.base = np.zeros(self.n_classes)
        rows: list[np.ndarray] = []
        values: list[np.ndarray] = []
        for t, tree in enumerate(trees):
            self.offsets[t] = len(rows)
            root = tree["tree_structure"]
            leaves = max(1, int(tree.get("num_leaves", 1)))
            table, value = np.zeros((leaves, n_features)), np.zeros(leaves)
            self.base[self.tree_class[t]] += _value(root)
            _walk(root, np.zeros(n_features), table, value)
            rows.extend(table)
            values.append(value)
        self.table = np.asarray(rows, dtype=np.float64).reshape(-1, n_features)
        # each leaf's own output, by the table's rows: a raw score is the sum of the leaves
        self.leaf_values = np.concatenate(values) if values else np.zeros(0)
        self.leaf_row: FastRow | None = None
        # the batch look-up (``leadscore_core.leaves``), built with the first batch: True
        # until then, None where it does not fit the model
        self.batch_leaves: TreeLeaves | bool | None = True

    def leaves(self, X: np.ndarray) -> np.ndarray:
        if len(X) == 1 and self.leaf_row is not None:
            leaves = self.leaf_row(X[0]).astype(np.int64)
        elif (look_up := self._batch_look_up()) is not None:
            leaves = look_up(X)
        else:
            leaves = np.asarray(self.booster.predict(X, pred_leaf=True, num_threads=1),
                                dtype=np.int64)
        return leaves.reshape(len(X), -1) + self.offsets

    def _batch_look_up(self) -> TreeLeaves | None:
        if self.batch_leaves is True:
            self.batch_leaves = _batch_leaves(self.booster, self.table.shape[1])
        return self.batch_leaves  # type: ignore[return-value]

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """(rows, classes, features)."""
        leaves = self.leaves(X)
        n, f = len(X), self.table.shape[1]
        out = np.empty((n, self.n_classes, f))
        for k in range(self.n_classes):
            cols = leaves if self.n_classes == 1 else leaves[:, self.tree_class == k]
            if n == 1:
                out[0, k] = self.table[cols[0]].sum(axis=0)
            else:
                out[:, k] = _leaf_sums(cols, self.table)
        return out

    def raw_scores(self, X: np.ndarray) -> np.ndarray:
        """(rows,) raw scores of a one-class model: the outputs of the leaves reached, added
        tree after tree, without the contributions (a row's contributions and base value
        add up to the same to within a few units of the last bit, as LightGBM's own raw
        score does)."""
        return self.leaf_values[self.leaves(X).T].sum(axis=0)

    def row_binary(self, x: np.ndarray) -> list[float]:
        """One row of a one-class model through the prepared leaf handle."""
        leaves = self.leaf_row.into(x).astype(np.intp)
        leaves += self.offsets
        return self.table.take(leaves, axis=0).sum(axis=0).tolist()


# -- the explainer --------------------------------------------------------------------------


@dataclass
class Ranked:
    """Per row of a batch, as arrays: the explained class's contributions (rows, features),
    the encoded values (rows, features), the features of the ``top_k`` largest and smallest
    contributions (rows, top_k: candidates for reasons for and against, of which only
    positive and negative ones are reasons), the base values and raw scores (rows,), and the
    explained class of each row (multi-class models)."""

    contributions: np.ndarray
    codes: np.ndarray
    top: np.ndarray
    bottom: np.ndarray
    bases: np.ndarray
    raws: np.ndarray
    classes: list[str | None]


class Explainer:
    """Contributions and top reasons of a ``ModelBundle`` of any kind (see the module)."""

    def __init__(self, bundle: ModelBundle):
        self.bundle = bundle
        n_features = len(bundle.encoder.specs)
        self.tree = TreePaths(bundle.booster, n_features) if bundle.booster is not None \
            else None
        self.linear: LinearPart | None = bundle.linear
        self.tree_weight = bundle.tree_weight
        self.linear_weight = 1.0 - bundle.tree_weight
        self.n_classes = self.tree.n_classes if self.tree else self.linear.n_classes
        base = np.zeros(self.n_classes)
        if self.tree is not None:
            base += self.tree_weight * self.tree.base
        if self.linear is not None:
            base += self.linear_weight * self.linear.base
        self.base = base
        specs = bundle.encoder.specs
        self._names = [spec.original_name for spec in specs]
        self._decode = [spec.decode for spec in specs]
        self._single_base = float(self.base[0])
        self._fast = False

    def single_row_fast_path(self) -> None:
        """Answer one-row calls through a prepared handle (event-loop thread only)."""
        from leadscore_core.fastrow import LEAF_INDEX, FastRow

        if self.tree is not None:
            self.tree.leaf_row = FastRow(self.bundle.booster, LEAF_INDEX,
                                         self.tree.table.shape[1], len(self.tree.offsets))
        self._fast = self.n_classes == 1

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """(rows, classes, features + 1): per-feature contributions, base value last."""
        X = np.asarray(X, dtype=np.float64).reshape(-1, len(self.bundle.encoder.specs))
        n, f = X.shape
        out = np.zeros((n, self.n_classes, f + 1))
        if self.tree is not None:
            part = self.tree.contributions(X)
            out[:, :, :f] = part if self.linear is None else self.tree_weight * part
        if self.linear is not None:
            part = self.linear.contributions(X)
            out[:, :, :f] += part if self.tree is None else self.linear_weight * part
        out[:, :, f] = self.base
        return out

    def explain(self, X: np.ndarray, top_k: int = 3, reason: type | None = None
                ) -> list[Explanation]:
        """Top reasons for and against each row. Each reason is ``reason(feature, value,
        contribution)`` (``serving.Reason`` by default; the API passes its response type, so
        no second copy is made). Multi-class: the row's predicted class is explained."""
        from leadscore_core.serving import Explanation, Reason

        reason = reason or Reason
        X = np.asarray(X, dtype=np.float64).reshape(-1, len(self.bundle.encoder.specs))
        if len(X) == 1 and self._fast:
            return [self._explain_one(X[0], top_k, reason)]
        ranked = self.ranked(X, top_k)
        names, decode = self._names, self._decode
        top, bottom = ranked.top.tolist(), ranked.bottom.tolist()
        bases, raws, codes = ranked.bases.tolist(), ranked.raws.tolist(), ranked.codes.tolist()
        out = []
        for i, c in enumerate(ranked.contributions.tolist()):
            x = codes[i]
            reasons_for = [reason(names[j], decode[j](x[j]), c[j]) for j in top[i] if c[j] > 0]
            reasons_against = [reason(names[j], decode[j](x[j]), c[j]) for j in bottom[i]
                               if c[j] < 0]
            out.append(Explanation(base_value=bases[i], raw_score=raws[i],
                                   explained_class=ranked.classes[i], reasons_for=reasons_for,
                                   reasons_against=reasons_against))
        return out

    def ranked(self, X: np.ndarray, top_k: int = 3) -> Ranked:
        """What ``explain`` makes its reasons of, for every row at once: a caller building
        its own answers (the API's) reads them without an ``Explanation`` per row in
        between."""
        X = np.asarray(X, dtype=np.float64).reshape(-1, len(self.bundle.encoder.specs))
        contrib = self.contributions(X)
        classes: list[str | None] = [None] * len(X)
        if self.bundle.task == "multiclass":
            winners = np.argmax(contrib.sum(axis=2), axis=1)
            rows = contrib[np.arange(len(X)), winners]
            classes = [self.bundle.classes[w] for w in winners]
        else:
            rows = contrib[:, 0]
        values = rows[:, :-1]
        # every row ranked at once; "against" is the stable descending order read backwards
        order = np.argsort(-values, axis=1, kind="stable")
        return Ranked(contributions=values, codes=X, top=order[:, :top_k],
                      bottom=order[:, ::-1][:, :top_k], bases=rows[:, -1],
                      raws=rows.sum(axis=1), classes=classes)

    def _explain_one(self, x: np.ndarray, top_k: int, reason: type) -> Explanation:
        """One row of a binary model, as ``explain`` answers it, in plain Python: for a
        single row, numpy's per-call overhead is most of the cost."""
        from leadscore_core.serving import Explanation

        codes = x.tolist()
        if self.linear is None:
            c = self.tree.row_binary(x)
        elif self.tree is None:
            c = self.linear.row_binary(codes)
        else:
            wt, wl = self.tree_weight, self.linear_weight
            c = [wt * a + wl * b for a, b in zip(self.tree.row_binary(x),
                                                  self.linear.row_binary(codes), strict=True)]
        base = self._single_base
        # Python's sort is stable with reverse=True too: ties keep feature order, as the
        # stable argsort of the batch path does
        order = sorted(range(len(c)), key=c.__getitem__, reverse=True)
        names, decode = self._names, self._decode
        reasons_for = [reason(names[j], decode[j](codes[j]), c[j]) for j in order[:top_k]
                       if c[j] > 0]
        reasons_against = [reason(names[j], decode[j](codes[j]), c[j])
                           for j in order[::-1][:top_k] if c[j] < 0]
        # correctly rounded, so it agrees with the batch path's sum to the last bit or two
        raw = math.fsum(c) + base
        return Explanation(base_value=base, raw_score=raw, explained_class=None,
                           reasons_for=reasons_for, reasons_against=reasons_against)


def _leaf_sums(leaves: np.ndarray, table: np.ndarray) -> np.ndarray:
    """(rows, features): per row, the sum of the table rows its ``leaves`` (rows, trees)
    name, tree after tree: a rows x leaves indicator times the leaf table, without
    materialising a rows x trees x features block."""
    n, trees = leaves.shape
    indices = np.ascontiguousarray(leaves, dtype=np.intp).ravel()
    indptr = np.arange(0, n * trees + 1, trees, dtype=np.intp)
    try:
        # scipy's own kernel behind ``csr_matrix @ dense``, called without building the
        # matrix object: for a 100-lead batch, building it costs half as much as the sum
        from scipy.sparse._sparsetools import csr_matvecs
    except ImportError:  # a scipy without it: the public product, the same sums
        import scipy.sparse as sp

        return sp.csr_matrix((np.ones(n * trees), indices, indptr),
                             shape=(n, table.shape[0])) @ table
    out = np.zeros((n, table.shape[1]))
    csr_matvecs(n, table.shape[0], table.shape[1], indptr, indices, np.ones(n * trees),
                np.ascontiguousarray(table).ravel(), out.ravel())
    return out


def _batch_leaves(booster, n_features: int) -> TreeLeaves | None:
    """The table look-up of a batch's leaves (``leadscore_core.leaves``) when it gives
    LightGBM's own leaves on the probe rows; else None (LightGBM walks the trees)."""
    from leadscore_core.leaves import TreeLeaves

    try:
        found = TreeLeaves(booster.dump_model(), booster.model_to_string(), n_features)
    except ValueError:  # trees too large for a 64-bit mask
        return None
    if not found.matches(booster):
        log.warning("batch leaf look-up disagrees with LightGBM on this model; not used")
        return None
    return found


def mean_abs_share(explainer: Explainer, X: np.ndarray) -> np.ndarray:
    """Each feature's share of the mean absolute contribution over ``X`` (all classes)."""
    contrib = np.abs(explainer.contributions(X)[:, :, :-1]).sum(axis=1).mean(axis=0)
    total = contrib.sum()
    return contrib / total if total > 0 else contrib


def _value(node: dict) -> float:
    return float(node["leaf_value"] if "leaf_index" in node or "leaf_value" in node
                 else node["internal_value"])


def _walk(node: dict, path: np.ndarray, table: np.ndarray, values: np.ndarray) -> None:
    """Fill ``table[leaf]`` with the contributions accumulated on the way to each leaf, and
    ``values[leaf]`` with the leaf's output."""
    if "split_feature" not in node:
        leaf = int(node.get("leaf_index", 0))
        table[leaf], values[leaf] = path, _value(node)
        return
    feature = int(node["split_feature"])
    here = _value(node)
    for side in ("left_child", "right_child"):
        child = node[side]
        step = path.copy()
        step[feature] += _value(child) - here
        _walk(child, step, table, values)
