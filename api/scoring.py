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
from msgspec.structs import asdict, astuple

from api.models import ServedModel
from api.schemas import ID_FIELD, ChurnRisk, LeadScore, PlanRecommendation, Reason, Suggestion
from leadscore_core.explain import Ranked
from leadscore_core.money import Currency, PaymentCurrencies
from leadscore_core.plans import PlanCatalogue
from leadscore_core.reasons import (
    MISSING_MIN_POINTS,
    FieldDisplay,
    ReasonTexts,
    points_given,
    points_of_many,
)
from leadscore_core.suggest import actionable_indices, best_change, split_thresholds
from leadscore_core.tiers import tiers_of

TOP_K = 3
# a batch's feature values, field by field: name -> one value per row
Columns = Mapping[str, Sequence[Any]]


class LogRows(list):
    """(inputs, outputs) per prediction, for the prediction log; inputs are the request's
    own body (a Struct that encodes without its unset fields) or, for a customer looked up
    by id, the features used. ``codes``: the inputs as the answering model's ``encoder``
    encoded them (rows x its columns), which a challenger with the same encoder scores
    without encoding them again (``api.shadow``)."""

    __slots__ = ("codes", "encoder")

    def __init__(self, rows: Any = (), codes: np.ndarray | None = None,
                 encoder: Any = None):
        super().__init__(rows)
        self.codes = codes
        self.encoder = encoder


def log_rows(model: ServedModel, X: np.ndarray) -> LogRows:
    """An empty ``LogRows`` for the rows ``model`` encoded as ``X``."""
    return LogRows(codes=X, encoder=model.bundle.encoder)


def records_of(bodies: Sequence[Struct]) -> tuple[list[dict[str, Any]], list[str | None]]:
    """Feature mappings for the encoder, and the callers' ids."""
    records = [asdict(b) for b in bodies]
    ids = [r.pop(ID_FIELD, None) for r in records]
    return records, ids


def columns_of(bodies: Sequence[Struct]) -> tuple[Columns, list[str | None]]:
    """The bodies' values field by field (field -> one value per body; an unset field is
    None), and the callers' ids: a batch is encoded column by column."""
    if not bodies:
        return {}, []
    kind = type(bodies[0])
    if any(type(b) is not kind for b in bodies):
        records, ids = records_of(bodies)
        return {f: [r.get(f) for r in records] for f in kind.__struct_fields__}, ids
    values = zip(*map(astuple, bodies), strict=True)  # one tuple per field
    columns = dict(zip(kind.__struct_fields__, values, strict=True))
    ids = list(columns.pop(ID_FIELD, [None] * len(bodies)))
    return columns, ids


def encode(model: ServedModel, records: list[dict[str, Any]]) -> np.ndarray:
    return model.bundle.encoder.transform_records(records)


# (base value, raw score, reasons for, reasons against) of one binary answer
Explained = tuple[float, float, list[Reason], list[Reason]]
Displays = Mapping[str, FieldDisplay] | ReasonTexts | None


def texts_of(displays: Displays) -> ReasonTexts:
    return displays if isinstance(displays, ReasonTexts) else ReasonTexts(displays)


def humanise(model: ServedModel, reasons: list[Reason], raw_score: float,
             record: Mapping[str, Any], texts: ReasonTexts) -> list[Reason]:
    """The reasons with their text and points for people (``leadscore_core.reasons``); a
    missing value that does not move the score by ``MISSING_MIN_POINTS`` is left out."""
    link, field_of = model.link, model.field_of
    p = link(raw_score)
    kept = []
    for r in reasons:
        points = points_given(p, r.contribution, raw_score, link)
        value = r.value
        if value is None or value != value:  # missing (NaN), as human_reason reads it
            if abs(points) < MISSING_MIN_POINTS:
                continue
            r.value, r.text = None, texts.missing(r.feature)
        else:
            r.text = texts(r.feature, value, record.get(field_of.get(r.feature, r.feature)))
        r.points = round(points, 2)
        kept.append(r)
    return kept


def _binary(model: ServedModel, columns: Columns, n: int, texts: ReasonTexts
            ) -> tuple[np.ndarray | list[float], list[Explained], np.ndarray]:
    """Probabilities and explained answers of ``n`` binary-model rows, and the rows encoded:
    one lead through the explainer's single-row path, a batch from its ranked contributions
    in one pass (the same reasons, values and order as ``Explainer.explain`` gives:
    ``tests/test_api.py``)."""
    if n == 1:
        record = {name: values[0] for name, values in columns.items()}
        X = encode(model, [record])
        proba, (e,) = model.score_and_explain(X, TOP_K)
        return proba, [(e.base_value, e.raw_score,
                        humanise(model, e.reasons_for, e.raw_score, record, texts),
                        humanise(model, e.reasons_against, e.raw_score, record, texts))], X
    X = model.bundle.encoder.transform_columns(columns, n)
    ranked = model.bundle.explainer.ranked(X, TOP_K)
    proba = model.probabilities(X, ranked.raws)
    return proba, _batch_reasons(model, ranked, columns, texts), X


def _batch_reasons(model: ServedModel, ranked: Ranked, columns: Columns, texts: ReasonTexts
                   ) -> list[Explained]:
    """``humanise`` of every row's reasons at once: which candidates are reasons, and their
    points, worked out on arrays; what is left per reason is its value and text."""
    n, k = ranked.top.shape
    candidates = np.concatenate([ranked.top, ranked.bottom], axis=1)  # (rows, 2k)
    at = np.arange(n)[:, None]
    c = ranked.contributions[at, candidates]
    codes = ranked.codes[at, candidates]
    points, rounded = points_of_many(ranked.raws, c, *model.link_ab)
    # for: positive contributions among the top k; against: negative among the bottom k;
    # a missing value only when it moves the score enough
    against = np.arange(2 * k) >= k
    missing = np.isnan(codes) | model.never_valued[candidates]
    keep = (np.where(against, c < 0, c > 0)
            & (~missing | (np.abs(points) >= MISSING_MIN_POINTS)))
    rows, slots = np.nonzero(keep)  # row by row, each side's candidates in their order
    names, decode = model.reason_names, model.decoders
    # per encoder column, the values sent for a categorical feature, whose text keeps the
    # spelling sent; and per column, the value and text of each code (or spelling) met in
    # this batch: a batch's reasons repeat the same few values
    spellings = [columns.get(field) if categorical else None
                 for field, categorical in zip(model.reason_fields, model.categorical,
                                               strict=True)]
    met: list[dict[Any, tuple[Any, str]]] = [{} for _ in names]
    sides: list[tuple[list[Reason], list[Reason]]] = [([], []) for _ in range(n)]
    for i, slot, j, cj, code, pts, gone in zip(
            rows.tolist(), (slots >= k).tolist(), candidates[rows, slots].tolist(),
            c[rows, slots].tolist(), codes[rows, slots].tolist(),
            rounded[rows, slots].tolist(), missing[rows, slots].tolist(), strict=True):
        feature = names[j]
        if gone:
            key, sent = None, None  # (no code is None)
        else:
            spelling = spellings[j]
            sent = None if spelling is None else spelling[i]
            # the same spelling is the same code; any other value of the code reads alike
            key = sent if type(sent) is str else code
        found = met[j].get(key)
        if found is None:
            value = None if gone else decode[j](code)
            found = met[j][key] = (value, texts.missing(feature) if gone
                                   else texts(feature, value, sent))
        sides[i][slot].append(Reason(feature, found[0], cj, found[1], pts))
    bases, raws = ranked.bases.tolist(), ranked.raws.tolist()
    return [(bases[i], raws[i], sides[i][0], sides[i][1]) for i in range(n)]


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
                displays: Displays = None, *, horizon: str = "",
                ) -> tuple[list[LeadScore], LogRows]:
    """``tier_bounds``: the batch scores' published boundaries for this version (default: the
    bundle's own); ``displays``: the lead profile's labels and units for the reasons (a
    ``ReasonTexts`` of them remembers the texts from one request to the next);
    ``horizon``: what the probability is of (``leadscore_core.horizons``)."""
    columns, ids = columns_of(bodies)
    proba, explained, X = _binary(model, columns, len(ids), texts_of(displays))
    # 0-100, half to even: Python's round and numpy's rint agree
    if len(ids) == 1:
        probabilities, scores = [float(proba[0])], [round(100.0 * proba[0])]
    else:
        probabilities = np.asarray(proba, dtype=np.float64).tolist()
        scores = np.rint(100.0 * np.asarray(proba)).astype(int).tolist()
    tiers = _tiers(model, scores, tier_bounds)
    name, version = model.name, model.version
    out, log = [], log_rows(model, X)
    for i, (base, raw, reasons_for, reasons_against) in enumerate(explained):
        p, s, t = probabilities[i], scores[i], tiers[i]
        out.append(LeadScore(
            id=ids[i], probability=p, score=s, tier=t, reasons_for=reasons_for,
            reasons_against=reasons_against, base_value=base, raw_score=raw, model=name,
            version=version, horizon=horizon))
        log.append((bodies[i], {"probability": p, "score": s, "tier": t}))
    return out, log


def churn_risks(model: ServedModel, bodies: Sequence[Struct] | None,
                risk: Callable[[float], str], *, records: list[dict[str, Any]] | None = None,
                ids: list[str | None] | None = None, as_of: str | None = None,
                displays: Displays = None, horizon: str = "",
                ) -> tuple[list[ChurnRisk], LogRows]:
    if records is None:
        columns, ids = columns_of(bodies or [])
        inputs: Sequence[Any] = bodies or []
    else:
        inputs = [_inputs(r, i) for r, i in zip(records, ids or [None] * len(records),
                                                strict=True)]
        columns = {name: [r.get(name) for r in records] for name in model.bundle.encoder.names}
    proba, explained, X = _binary(model, columns, len(inputs), texts_of(displays))
    out, log = [], log_rows(model, X)
    for i, (base, raw, reasons_for, reasons_against) in enumerate(explained):
        p = float(proba[i])
        level = risk(p)
        out.append(ChurnRisk(
            id=ids[i], probability=p, risk=level, reasons_for=reasons_for,
            reasons_against=reasons_against, base_value=base, raw_score=raw,
            model=model.name, version=model.version, as_of=as_of, horizon=horizon))
        log.append((inputs[i], {"probability": p, "risk": level}))
    return out, log


class PlanPrices:
    """The price list plan answers carry, in the currency decided for the prices
    (``PaymentCurrencies.plan_prices``); ``current`` is replaced whole, so a batch reads one
    list."""

    def __init__(self, catalogue: PlanCatalogue, currencies: PaymentCurrencies):
        self.catalogue, self.currencies = catalogue, currencies
        self.current: dict[str, dict[str, Any]] = {}
        self.refresh()

    def refresh(self) -> None:
        self.current = {
            p["plan"].lower(): {k: (float(v) if k.endswith("price") else v) for k, v in p.items()}
            for p in self.catalogue.price_list(self.currencies.plan_prices)}

    @property
    def currency(self) -> Currency:
        return self.currencies.plan_prices


def recommend_plans(model: ServedModel, bodies: Sequence[Struct],
                    prices: Mapping[str, Mapping[str, Any]]
                    ) -> tuple[list[PlanRecommendation], LogRows]:
    records, ids = records_of(bodies)
    X = encode(model, records)
    proba = np.atleast_2d(model.bundle.predict_proba(X))
    best = np.argmax(proba, axis=1)
    out, log = [], log_rows(model, X)
    for i in range(len(records)):
        plan = model.classes[int(best[i])]
        probabilities = {c: float(proba[i, k]) for k, c in enumerate(model.classes)}
        price = prices.get(plan.lower(), {})
        out.append(PlanRecommendation(
            id=ids[i], plan=plan, monthly_price=price.get("monthly_price"),
            first_month_price=price.get("first_month_price"), currency=price.get("currency"),
            currencies=price.get("currencies") or [],
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
