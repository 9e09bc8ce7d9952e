"""Per-feature contributions at request speed: decision-path attribution, precomputed per leaf.

LightGBM's exact SHAP values (``pred_contrib``) cost about 5 microseconds per tree per row,
over a millisecond for a few hundred trees: more than everything else a request does. Path
attribution (Saabas; XGBoost's ``approx_contribs``) splits each tree's output along the path
the row takes: every split hands the change in the node's expected value to the feature it
splits on. A tree's contributions therefore depend only on the leaf reached, so they are
computed once per leaf when the model loads; a request asks LightGBM for its leaves
(``pred_leaf``) and adds up precomputed rows. Per tree the steps telescope from the root's
value to the leaf's value, so ``base_value + sum(contributions) == raw score``, the same
identity SHAP values satisfy; both name the same features for a clear-cut lead, and the
ranking can differ when features interact. ``LEADSCORE_API_EXPLAIN=shap`` serves LightGBM's
SHAP values instead (what the batch scores use).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from api.fastrow import LEAF_INDEX, FastRow
from leadscore_core.serving import Explanation, ModelBundle, Reason


class PathExplainer:
    """Contributions of every leaf of every tree, from the booster's own tree dump."""

    def __init__(self, bundle: ModelBundle):
        self.bundle = bundle
        booster = bundle.booster
        dump = booster.dump_model()
        n_features = len(bundle.encoder.specs)
        self.n_classes = max(1, int(dump.get("num_tree_per_iteration", 1)))
        trees = dump["tree_info"]
        self.offsets = np.zeros(len(trees), dtype=np.intp)
        self.tree_class = np.arange(len(trees)) % self.n_classes
        self.base = np.zeros(self.n_classes)
        rows: list[np.ndarray] = []
        for t, tree in enumerate(trees):
            self.offsets[t] = len(rows)
            root = tree["tree_structure"]
            leaves = max(1, int(tree.get("num_leaves", 1)))
            table = np.zeros((leaves, n_features))
            self.base[self.tree_class[t]] += _value(root)
            _walk(root, np.zeros(n_features), table)
            rows.extend(table)
        self.table = np.asarray(rows, dtype=np.float64).reshape(-1, n_features)
        self.leaf_row: FastRow | None = None
        specs = bundle.encoder.specs
        self._names = [spec.original_name for spec in specs]
        self._decode = [spec.decode for spec in specs]
        self._single_base = float(self.base[0])

    def single_row_fast_path(self) -> None:
        """Answer one-row calls through a prepared handle (event-loop thread only)."""
        self.leaf_row = FastRow(self.bundle.booster, LEAF_INDEX, self.table.shape[1],
                                len(self.offsets))

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """(rows, classes, features + 1): per-feature contributions, base value last."""
        if len(X) == 1 and self.leaf_row is not None:
            leaves = self.leaf_row(X[0]).astype(np.int64)
        else:
            leaves = np.asarray(self.bundle.booster.predict(X, pred_leaf=True), dtype=np.int64)
        leaves = leaves.reshape(len(X), -1) + self.offsets
        n, f = len(X), self.table.shape[1]
        out = np.empty((n, self.n_classes, f + 1))
        for k in range(self.n_classes):
            cols = leaves if self.n_classes == 1 else leaves[:, self.tree_class == k]
            if n == 1:
                out[0, k, :f] = self.table[cols[0]].sum(axis=0)
            else:
                # rows x leaves indicator times the leaf table: the sum over trees without
                # materialising a rows x trees x features block
                trees = cols.shape[1]
                hits = sp.csr_matrix(
                    (np.ones(n * trees), cols.ravel(), np.arange(0, n * trees + 1, trees)),
                    shape=(n, self.table.shape[0]))
                out[:, k, :f] = hits @ self.table
            out[:, k, f] = self.base[k]
        return out

    def explain(self, X: np.ndarray, top_k: int = 3, reason: type = Reason
                ) -> list[Explanation]:
        """The same answer shape as ``ModelBundle.explain``; each reason is
        ``reason(feature, value, contribution)`` (the API passes its response type, so no
        second copy is made)."""
        X = np.asarray(X, dtype=np.float64).reshape(-1, len(self.bundle.encoder.specs))
        if len(X) == 1 and self.n_classes == 1 and self.leaf_row is not None:
            return [self._explain_one(X[0], top_k, reason)]
        contrib = self.contributions(X)
        classes: list[str | None] = [None] * len(X)
        if self.bundle.task == "multiclass":
            winners = np.argmax(self.bundle.booster.predict(X), axis=1)
            rows = contrib[np.arange(len(X)), winners]
            classes = [self.bundle.classes[w] for w in winners]
        else:
            rows = contrib[:, 0]
        names, decode = self._names, self._decode
        values = rows[:, :-1]
        # every row ranked at once; "against" is the stable descending order read backwards
        order = np.argsort(-values, axis=1, kind="stable")
        top = order[:, :top_k].tolist()
        bottom = order[:, ::-1][:, :top_k].tolist()
        contributions = values.tolist()
        codes = X.tolist()
        bases = rows[:, -1].tolist()
        raws = rows.sum(axis=1).tolist()
        out = []
        for i, c in enumerate(contributions):
            x = codes[i]
            reasons_for = [reason(names[j], decode[j](x[j]), c[j]) for j in top[i] if c[j] > 0]
            reasons_against = [reason(names[j], decode[j](x[j]), c[j]) for j in bottom[i]
                               if c[j] < 0]
            out.append(Explanation(base_value=bases[i], raw_score=raws[i],
                                   explained_class=classes[i], reasons_for=reasons_for,
                                   reasons_against=reasons_against))
        return out


    def _explain_one(self, x: np.ndarray, top_k: int, reason: type) -> Explanation:
        """One row of a binary model, as ``explain`` answers it, in plain Python: for a
        single row, numpy's per-call overhead is most of the cost."""
        leaves = self.leaf_row.into(x).astype(np.intp)
        leaves += self.offsets
        c = self.table.take(leaves, axis=0).sum(axis=0).tolist()
        base = self._single_base
        # Python's sort is stable with reverse=True too: ties keep feature order, as the
        # stable argsort of the batch path does
        order = sorted(range(len(c)), key=c.__getitem__, reverse=True)
        names, decode = self._names, self._decode
        codes = x.tolist()
        reasons_for = [reason(names[j], decode[j](codes[j]), c[j]) for j in order[:top_k]
                       if c[j] > 0]
        reasons_against = [reason(names[j], decode[j](codes[j]), c[j])
                           for j in order[::-1][:top_k] if c[j] < 0]
        # correctly rounded, so it agrees with the batch path's sum to the last bit or two
        raw = math.fsum(c) + base
        return Explanation(base_value=base, raw_score=raw, explained_class=None,
                           reasons_for=reasons_for, reasons_against=reasons_against)


def _value(node: dict) -> float:
    return float(node["leaf_value"] if "leaf_index" in node or "leaf_value" in node
                 else node["internal_value"])


def _walk(node: dict, path: np.ndarray, table: np.ndarray) -> None:
    """Fill ``table[leaf]`` with the contributions accumulated on the way to each leaf."""
    if "split_feature" not in node:
        table[int(node.get("leaf_index", 0))] = path
        return
    feature = int(node["split_feature"])
    here = _value(node)
    for side in ("left_child", "right_child"):
        child = node[side]
        step = path.copy()
        step[feature] += _value(child) - here
        _walk(child, step, table)
