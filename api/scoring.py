"""From request bodies to answers: encode, predict, explain, no DataFrame on the way.

Each function takes the ``ServedModel`` a request started with (so a champion swapped in
meanwhile never mixes into one answer) and returns the response bodies plus the
(inputs, outputs) pairs for the prediction log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs

import numpy as np
from msgspec import Struct
from msgspec.structs import asdict

from api.models import ServedModel
from api.schemas import ID_FIELD, ChurnRisk, LeadScore, PlanRecommendation, Reason, Suggestion
from leadscore_core.reasons import FieldDisplay, human_reason
from leadscore_core.serving import Explanation
from leadscore_core.suggest import actionable_indices, best_change, split_thresholds
from leadscore_core.tiers import tiers_of

# (inputs, outputs) per prediction; inputs are the request's own body (a Struct that encodes
# without its unset fields) or, for a customer looked up by id, the features used
LogRows = list[tuple[Struct | dict[str, Any], dict[str, Any]]]
TOP_K = 3


def records_of(bodies: Sequence[Struct]) -> tuple[list[dict[str, Any]], list[str | None]]:
    """Feature mappings for the encoder, and the callers' ids."""
    records = [asdict(b) for b in bodies]
    ids = [r.pop(ID_FIELD, None) for r in records]
    return records, ids


def encode(model: ServedModel, records: list[dict[str, Any]]) -> np.ndarray:
    return model.bundle.encoder.transform_records(records)


def _reasons(explanation: Explanation) -> tuple[list[Reason], list[Reason]]:
    first = (explanation.reasons_for or explanation.reasons_against or [None])[0]
    if first is None or type(first) is Reason:  # the path explainer builds them as such
        return explanation.reasons_for, explanation.reasons_against
    return (
        [Reason(r.feature, r.value, r.contribution) for r in explanation.reasons_for],
        [Reason(r.feature, r.value, r.contribution) for r in explanation.reasons_against],
    )


def humanise(model: ServedModel, reasons: list[Reason], raw_score: float,
             record: Mapping[str, Any], displays: Mapping[str, FieldDisplay] | None
             ) -> list[Reason]:
    """The reasons with their text and points for people (``leadscore_core.reasons``); a
    missing value that does not move the score is left out."""
    kept = []
    for r in reasons:
        human = human_reason(r.feature, r.value, r.contribution, raw_score=raw_score,
                             link=model.link, displays=displays,
                             sent=record.get(model.field_of.get(r.feature, r.feature)))
        if human is None:
            continue
        r.text, r.points = human.text, round(human.points, 2)
        kept.append(r)
    return kept


def _binary(model: ServedModel, records: list[dict[str, Any]]
            ) -> tuple[np.ndarray | list[float], list[Explanation]]:
    return model.score_and_explain(encode(model, records), TOP_K)


def _tiers(model: ServedModel, scores: list[int], bounds: np.ndarray | None
           ) -> list[str | None]:
    bounds = model.tier_bounds if bounds is None else bounds
    if bounds is None:
        return [None] * len(scores)
    return tiers_of(scores, bounds)


def _inputs(record: Mapping[str, Any], id_: str | None) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if v is not None}
    if id_ is not None:
        out[ID_FIELD] = id_
    return out


def score_leads(model: ServedModel, bodies: Sequence[Struct],
                tier_bounds: np.ndarray | None = None,
                displays: Mapping[str, FieldDisplay] | None = None, *, horizon: str = "",
                ) -> tuple[list[LeadScore], LogRows]:
    """``tier_bounds``: the batch scores' published boundaries for this version (default: the
    bundle's own); ``displays``: the lead profile's labels and units for the reasons;
    ``horizon``: what the probability is of (``leadscore_core.horizons``)."""
    records, ids = records_of(bodies)
    proba, explanations = _binary(model, records)
    # 0-100, half to even: Python's round and numpy's rint agree
    scores = ([round(100.0 * proba[0])] if len(records) == 1
              else np.rint(100.0 * np.asarray(proba)).astype(int).tolist())
    tiers = _tiers(model, scores, tier_bounds)
    out, log = [], []
    for i, explanation in enumerate(explanations):
        p, s = float(proba[i]), scores[i]
        reasons_for, reasons_against = _reasons(explanation)
        raw = explanation.raw_score
        reasons_for = humanise(model, reasons_for, raw, records[i], displays)
        reasons_against = humanise(model, reasons_against, raw, records[i], displays)
        out.append(LeadScore(
            id=ids[i], probability=p, score=s, tier=tiers[i], reasons_for=reasons_for,
            reasons_against=reasons_against, base_value=explanation.base_value,
            raw_score=explanation.raw_score, model=model.name, version=model.version,
            horizon=horizon))
        log.append((bodies[i], {"probability": p, "score": s, "tier": tiers[i]}))
    return out, log


def churn_risks(model: ServedModel, bodies: Sequence[Struct] | None,
                risk: Callable[[float], str], *, records: list[dict[str, Any]] | None = None,
                ids: list[str | None] | None = None, as_of: str | None = None,
                displays: Mapping[str, FieldDisplay] | None = None, horizon: str = "",
                ) -> tuple[list[ChurnRisk], LogRows]:
    if records is None:
        records, ids = records_of(bodies or [])
        inputs: Sequence[Any] = bodies or []
    else:
        inputs = [_inputs(r, i) for r, i in zip(records, ids or [None] * len(records),
                                                strict=True)]
    proba, explanations = _binary(model, records)
    out, log = [], []
    for i, explanation in enumerate(explanations):
        p = float(proba[i])
        level = risk(p)
        reasons_for, reasons_against = _reasons(explanation)
        raw = explanation.raw_score
        reasons_for = humanise(model, reasons_for, raw, records[i], displays)
        reasons_against = humanise(model, reasons_against, raw, records[i], displays)
        out.append(ChurnRisk(
            id=ids[i], probability=p, risk=level, reasons_for=reasons_for,
            reasons_against=reasons_against, base_value=explanation.base_value,
            raw_score=explanation.raw_score, model=model.name, version=model.version,
            as_of=as_of, horizon=horizon))
        log.append((inputs[i], {"probability": p, "risk": level}))
    return out, log


def recommend_plans(model: ServedModel, bodies: Sequence[Struct],
                    prices: Mapping[str, Mapping[str, Any]]
                    ) -> tuple[list[PlanRecommendation], LogRows]:
    records, ids = records_of(bodies)
    X = encode(model, records)
    proba = np.atleast_2d(model.bundle.predict_proba(X))
    best = np.argmax(proba, axis=1)
    out, log = [], []
    for i in range(len(records)):
        plan = model.classes[int(best[i])]
        probabilities = {c: float(proba[i, k]) for k, c in enumerate(model.classes)}
        price = prices.get(plan.lower(), {})
        out.append(PlanRecommendation(
            id=ids[i], plan=plan, monthly_price=price.get("monthly_price"),
            first_month_price=price.get("first_month_price"), currency=price.get("currency"),
            probabilities=probabilities, model=model.name, version=model.version))
        log.append((bodies[i], {"plan": plan, **{
            f"probability_{c}": v for c, v in probabilities.items()}}))
    return out, log


def wants_suggestion(scope: Mapping[str, Any]) -> bool:
    """``?suggest=true`` on the request (read from the scope: the handler and the direct path
    answer alike)."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return query.get("suggest", [""])[-1].strip().lower() in ("true", "1", "yes")


class Suggester:
    """Best single changes for one served model version (its split thresholds read once)."""

    def __init__(self, model: ServedModel, actionable: Sequence[str]):
        self.model = model
        self.columns = actionable_indices(model.bundle, actionable)
        self.thresholds = split_thresholds(model.bundle)

    def suggest(self, records: list[dict[str, Any]], *, higher_is_better: bool,
                risk: Callable[[float], str] | None = None) -> list[Suggestion | None]:
        X = encode(self.model, records)
        out: list[Suggestion | None] = []
        for x in X:
            change = best_change(self.model.bundle, x, self.columns, self.thresholds,
                                 higher_is_better=higher_is_better)
            if change is None:
                out.append(None)
                continue
            p = change.probability
            out.append(Suggestion(
                feature=change.feature, value=change.value, change_to=change.change_to,
                probability=p, score=None if risk else round(100.0 * p),
                risk=risk(p) if risk else None))
        return out
