"""Request and response bodies.

Responses have a fixed shape. Requests follow the model: their fields are the features the
active source profile declares plus the features the served model was trained on, built as
``msgspec.Struct`` types when the app is created, so the OpenAPI document tells a client
exactly which fields to send and of which type. Every feature is optional (the models treat
a missing value as missing); a value of the wrong type is a 400 naming the field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

from leadscore_core.profiles import Profile, snake
from leadscore_core.serving import FeatureSpec

_TYPES: dict[str, Any] = {"categorical": str, "numeric": float, "boolean": bool}
# Request fields that are not features: the caller's own id, echoed back and logged so an
# outcome arriving later can be joined to what was predicted.
ID_FIELD = "id"


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str
    original_name: str
    examples: tuple[str, ...] = ()


def profile_fields(profile: Profile) -> list[FieldSpec]:
    """The features a profile declares by name (``features.rest`` needs a file's header)."""
    out = []
    for kind in ("categorical", "numeric", "boolean"):
        for original in getattr(profile.features, kind):
            out.append(FieldSpec(snake(original), kind, original))
    return out


def model_fields(specs: Iterable[FeatureSpec]) -> list[FieldSpec]:
    return [FieldSpec(s.name, s.kind, s.original_name, tuple((s.categories or [])[:5]))
            for s in specs]


def merge_fields(*groups: Iterable[FieldSpec]) -> list[FieldSpec]:
    """Union by name; a later group (the model) wins over an earlier one (the profile)."""
    merged: dict[str, FieldSpec] = {}
    for group in groups:
        for spec in group:
            merged[spec.name] = spec
    return list(merged.values())


def request_struct(struct_name: str, fields: Iterable[FieldSpec], *,
                   id_description: str, forbid_unknown: bool = False) -> type[Struct]:
    """A Struct with an optional ``id`` and one optional, typed field per feature.

    ``forbid_unknown``: a body with a field the model does not know fails to decode (the
    direct path's twin of the documented type, so such a body reaches the handler, which
    reports the field back as ignored)."""
    members: list[tuple[str, Any, Any]] = [
        (ID_FIELD, Annotated[str | None, Meta(description=id_description)], None)]
    for spec in fields:
        if spec.name == ID_FIELD:
            continue
        meta: dict[str, Any] = {"description": _describe(spec)}
        if spec.examples:
            meta["examples"] = list(spec.examples)
        members.append((spec.name, Annotated[_TYPES[spec.kind] | None, Meta(**meta)], None))
    # gc=False: a body holds only scalars, so it can never be part of a reference cycle;
    # the collector need not track the thousands a batch creates
    return msgspec.defstruct(struct_name, members, kw_only=True, omit_defaults=True,
                             gc=False, module=__name__, forbid_unknown_fields=forbid_unknown)


def has_features(body: Struct) -> bool:
    """Whether a decoded body sets any feature (``id`` is the first field, not a feature)."""
    values = msgspec.structs.astuple(body)
    return values.count(None) + (values[0] is not None) < len(values)


def check_fields(items: list[Any], struct: type[Struct], *, batch: bool) -> list[list[str]]:
    """The fields of each raw JSON item that ``struct`` does not know (sorted), or a 400
    naming the expected fields for an item in which no field is a feature."""
    from litestar.exceptions import HTTPException

    features = [f for f in struct.__struct_fields__ if f != ID_FIELD]
    known = frozenset(features)
    ignored, problems = [], []
    for i, item in enumerate(items):
        keys = list(item) if isinstance(item, dict) else []
        ignored.append(sorted(k for k in keys if k not in known and k != ID_FIELD))
        if not any(k in known for k in keys):
            where = f"[{i}]" if batch else "body"
            got = ", ".join(ignored[-1]) or "no fields"
            problems.append({"field": where,
                             "reason": f"no field the model knows (got {got}); expected "
                                       f"any of: {', '.join(features)}"})
    if problems:
        detail = "; ".join(f"{p['field']}: {p['reason']}" for p in problems[:5])
        raise HTTPException(status_code=400, detail=f"invalid request: {detail}",
                            extra=problems)
    return ignored


def _describe(spec: FieldSpec) -> str:
    what = {"categorical": "category (case and spacing ignored; an unseen value counts as "
                           "missing)",
            "numeric": "number (one that is not finite counts as missing)",
            "boolean": "true or false"}[spec.kind]
    source = f"export column '{spec.original_name}'" if spec.original_name != spec.name else ""
    return "; ".join(x for x in (what, source) if x)


# -- responses ---------------------------------------------------------------------------------
# ``gc=False``: answers hold scalars and lists of reasons, never themselves, so they cannot
# form reference cycles and the collector need not track them (a batch makes thousands).


class Reason(Struct, gc=False):
    feature: str  # the export's column name, as people know it
    value: str | float | bool | None
    contribution: float  # on the raw (log-odds) scale
    text: str = ""  # for people: "Business type is Dental" (leadscore_core.reasons)
    points: float = 0.0  # what it adds to the 0-100 score


class Suggestion(Struct, gc=False):
    """The single change among the profile's actionable features that helps most."""

    feature: str  # the export's column name
    value: str | float | bool | None  # now
    change_to: str | float | bool | None
    probability: float  # after the change
    score: int | None = None  # leads: the 0-100 score after the change
    risk: str | None = None  # customers: the risk level after the change


class Explained(Struct, kw_only=True, gc=False):
    """What every scored answer explains, after its own fields: the reasons, which with the
    base value add up to the raw score, and the model version that gave them."""

    reasons_for: list[Reason]
    reasons_against: list[Reason]
    base_value: float
    raw_score: float
    model: str
    version: str


class LeadScore(Explained, gc=False):
    id: str | None
    probability: Annotated[float, Meta(ge=0, le=1)]
    score: Annotated[int, Meta(ge=0, le=100)]
    tier: str | None
    ignored_fields: list[str] = []  # request fields the model does not know
    horizon: str = ""  # what the probability is of, and by when
    suggestion: Suggestion | None = None  # with ?suggest=true


class PlanRecommendation(Struct, gc=False):
    id: str | None
    plan: str
    monthly_price: float | None
    first_month_price: float | None
    currency: str | None  # the prices' one currency; None: several (``currencies``) or unknown
    probabilities: dict[str, float]
    model: str
    version: str
    # every currency the prices hold in: the declared one, else the payments' (one or several)
    currencies: list[str] = []
    ignored_fields: list[str] = []


class ChurnRisk(Explained, gc=False):
    id: str | None
    probability: Annotated[float, Meta(ge=0, le=1)]
    risk: str
    as_of: str | None = None
    ignored_fields: list[str] = []
    horizon: str = ""  # what the probability is of, and by when
    suggestion: Suggestion | None = None  # with ?suggest=true
    # a known customer's amounts from payments: field -> currency -> amount, never added up
    # across currencies (``{"amount_paid": {"EUR": 20.0, "USD": 150.0}}``)
    amounts: dict[str, dict[str, float]] = {}


class ModelInfo(Struct):
    name: str
    status: str  # serving | unavailable
    version: str | None = None
    alias: str | None = None
    task: str | None = None
    trained_at: str | None = None
    loaded_at: float | None = None
    metrics: dict[str, Any] = {}
    features: list[str] = []
    error: str | None = None
    challenger: str | None = None  # the version scored in the shadow of this one, if any


class Readiness(Struct):
    ready: bool
    models: dict[str, str]  # name -> served version, or why it is not served


class ErrorBody(Struct):
    status_code: int
    detail: str
    extra: list[dict[str, Any]] | dict[str, Any] | None = None
