"""What changed between two scorings of the same leads or customers, and why.

A scoring is a frame with one row per entity (``key`` columns), its ``level`` (tier A-D,
risk High/Medium/Low) and ``value`` (score 0-100, churn probability), plus the long table of
its per-feature contributions (``key..., feature, value, number, contribution``: the raw value
shown to people, the number when the feature is numeric, LightGBM's contribution on the
log-odds scale). :func:`score_changes` pairs two scorings and keeps the entities that moved:
new ones, gone ones, and those whose level or value changed, each with the features whose
contribution changed most in the direction of the move, as text a person reads ("days since
last purchase +21 (10 → 31)").

No Dagster imports: the scores stage writes the changes, the API and pages may read them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

TOP_CHANGED = 3
CHANGE_COLUMNS = ["status", "previous_level", "level", "move", "previous_value", "value",
                  "value_change", "changed_reasons", "previous_model_version",
                  "model_version"]


def contributions_long(keys: pd.DataFrame, feature_names: Sequence[str],
                       shown: Sequence[Sequence[object]], numbers: np.ndarray,
                       contributions: np.ndarray) -> pd.DataFrame:
    """Per entity and feature: the value shown, its number (NaN if not numeric), and its
    contribution; ``shown``, ``numbers`` and ``contributions`` are rows x features."""
    n, k = len(keys), len(feature_names)
    frame = keys.loc[keys.index.repeat(k)].reset_index(drop=True)
    frame["feature"] = list(feature_names) * n
    frame["value"] = [_text(v) for row in shown for v in row]
    frame["number"] = np.asarray(numbers, dtype=np.float64).reshape(-1)
    frame["contribution"] = np.asarray(contributions, dtype=np.float64).reshape(-1)
    return frame


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "blank"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _number(value: float) -> str:
    return f"{value:+g}" if value != int(value) else f"{int(value):+d}"


def reason_text(feature: str, before: str, after: str, number_before: float,
                number_after: float, contribution_change: float) -> str:
    """``feature +21 (10 → 31)`` for a number, ``feature google → facebook`` for a category,
    ``feature = 250 (weighs more now)`` when only the model's view of the same value moved."""
    if before == after:
        direction = "more" if contribution_change > 0 else "less"
        return f"{feature} = {after} (weighs {direction} now)"
    if np.isfinite(number_before) and np.isfinite(number_after):
        return f"{feature} {_number(round(number_after - number_before, 6))} ({before} → {after})"
    return f"{feature} {before} → {after}"


def changed_reasons(previous: pd.DataFrame, current: pd.DataFrame, key: Sequence[str],
                    direction: pd.Series, top: int = TOP_CHANGED) -> pd.Series:
    """Per entity (indexed by ``key``): the ``top`` features whose contribution changed most,
    preferring those that moved the same way as the entity (``direction``: +1 up, -1 down)."""
    both = current.merge(previous, on=[*key, "feature"], how="inner",
                         suffixes=("", "_previous"))
    if both.empty:
        return pd.Series(dtype="object")
    both["delta"] = both["contribution"] - both["contribution_previous"]
    index = pd.MultiIndex.from_frame(both[list(key)]) if len(key) > 1 else pd.Index(
        both[key[0]])
    sign = direction.reindex(index).to_numpy()
    both["agrees"] = np.sign(both["delta"].to_numpy()) == sign
    both["size"] = both["delta"].abs()
    both = both[both["size"] > 1e-12].sort_values(
        [*key, "agrees", "size"], ascending=[*([True] * len(key)), False, False])
    texts = {}
    for entity, group in both.groupby(list(key) if len(key) > 1 else key[0], sort=False):
        texts[entity] = "; ".join(
            reason_text(r.feature, r.value_previous, r.value, r.number_previous, r.number,
                        r.delta) for r in group.head(top).itertuples(index=False))
    return pd.Series(texts, dtype="object")


def score_changes(previous: pd.DataFrame, current: pd.DataFrame, key: Sequence[str],
                  previous_contributions: pd.DataFrame, current_contributions: pd.DataFrame,
                  top: int = TOP_CHANGED) -> pd.DataFrame:
    """Entities that moved between two scorings.

    ``previous`` and ``current`` have the ``key`` columns, ``level``, ``value`` and
    ``model_version``. Returns ``key..., status (new | gone | changed), previous_level,
    level, move ("B→D"), previous_value, value, value_change, changed_reasons,
    previous_model_version, model_version``; entities with the same level and value are left
    out.
    """
    key = list(key)
    cols = [*key, "level", "value", "model_version"]
    pairs = previous[cols].merge(current[cols], on=key, how="outer",
                                 suffixes=("_previous", ""), indicator=True)
    pairs = pairs.rename(columns={"level_previous": "previous_level",
                                  "value_previous": "previous_value",
                                  "model_version_previous": "previous_model_version"})
    pairs["status"] = pairs["_merge"].map({"left_only": "gone", "right_only": "new",
                                           "both": "changed"}).astype("object")
    pairs["value_change"] = pairs["value"] - pairs["previous_value"]
    same = ((pairs["status"] == "changed") & (pairs["previous_level"] == pairs["level"])
            & np.isclose(pairs["value_change"].fillna(1.0), 0.0))
    pairs = pairs[~same].drop(columns="_merge").reset_index(drop=True)
    pairs["move"] = [f"{a}→{b}" if s == "changed" and a != b else ""
                     for s, a, b in zip(pairs["status"], pairs["previous_level"],
                                        pairs["level"], strict=True)]
    moved = pairs[pairs["status"] == "changed"]
    index = (pd.MultiIndex.from_frame(moved[key]) if len(key) > 1
             else pd.Index(moved[key[0]]))
    direction = pd.Series(np.sign(moved["value_change"].to_numpy()), index=index)
    reasons = changed_reasons(previous_contributions, current_contributions, key, direction,
                              top)
    lookup = (pd.MultiIndex.from_frame(pairs[key]) if len(key) > 1
              else pd.Index(pairs[key[0]]))
    pairs["changed_reasons"] = (reasons.reindex(lookup).fillna("").to_numpy()
                                if len(reasons) else "")
    pairs.loc[pairs["status"] != "changed", "changed_reasons"] = ""
    # a tier is a quartile of everyone's scores: it can move while the score stays put
    still = (pairs["status"] == "changed") & (pairs["value_change"] == 0)
    pairs.loc[still & (pairs["changed_reasons"] == ""), "changed_reasons"] = (
        "score unchanged: the other scores moved the tier boundaries")
    return pairs[[*key, *CHANGE_COLUMNS]].sort_values(
        [*key], ignore_index=True)


def moves_into(changes: pd.DataFrame, levels: Sequence[str], include_new: bool = True
               ) -> pd.DataFrame:
    """The changes that matter: entities that came into one of ``levels`` from another level
    (and, with ``include_new``, new entities scored straight into one)."""
    into = changes["level"].isin(list(levels))
    moved = (changes["status"] == "changed") & (changes["previous_level"] != changes["level"])
    new = (changes["status"] == "new") if include_new else False
    return changes[into & (moved | new)]
