"""The pages for sales and account teams, served by the prediction service itself.

Leads ranked by score, one lead with its reasons and plan, a what-if form, customers at risk,
and the models' health. They call the same scoring functions as the JSON routes (a lead page
shows exactly what ``POST /v1/leads/score`` answers for that lead's fields) and read only
the registry and the files Dagster publishes. Pages are Jinja templates; a change of filter
or of a what-if field asks the server for an HTML fragment (htmx, served from the package
like every other asset). What-if answers are not written to the prediction log: they are
not leads.

With an API key configured, the pages ask for it once and keep a signed, encrypted session
cookie (Litestar's client-side sessions, keyed from the API key); without one they are open,
as the API is.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import msgspec
import numpy as np
from litestar import Request, Response, Router, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.middleware.session.client_side import CookieBackendConfig
from litestar.params import Body, FromPath
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import File, Redirect, Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from api.config import LEAD_CONVERSION, PLAN, ApiSettings
from api.customers import KnownCustomers
from api.models import ModelRegistry, ServedModels
from api.scoring import PlanPrices, recommend_plans, score_leads
from api.snapshot import customer_key
from api.ui.data import (
    PAGE_SIZE,
    LeadQuery,
    ModelOverview,
    OpenLeads,
    page_of,
    performance_svg,
    read_customer_scores,
    read_open_leads,
    rows_as_csv,
    select_leads,
    spellings,
    when,
)
from leadscore_core.estimation import realised_rows, summary_rows
from leadscore_core.horizons import lead_window_days
from leadscore_core.money import Currency, amounts_text, money_text, record_amounts
from leadscore_core.profiles import Profile, snake
from leadscore_core.published import PublishedFile, open_leads_path
from leadscore_core.reasons import (
    FieldDisplay,
    field_display,
    format_number,
    format_value,
    points_text,
    record_value_text,
)
from leadscore_core.registry import MODELS, PRIMARY_METRIC, TAG_PROFILE
from leadscore_core.serving import normalise_category_value
from leadscore_core.settings import Settings
from leadscore_core.tiers import CHURN_MODELS, RISK_LEVELS, PublishedTiers, customer_risk
from leadscore_core.warehouse import snapshot_dir, snapshot_path

HERE = Path(__file__).parent
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"
LEAD_EXPORT = "lead_scores.csv"
RISK_ORDER = RISK_LEVELS
# what each churn model reads, for people
CHURN_SOURCES = {"activity_churn": "purchase activity", "snapshot_churn": "account snapshot"}
# held-out figures worth a line on the models page (the run logs counts and timings too)
SHOWN_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "lift_top_decile", "macro_f1",
                 "accuracy", "log_loss_multiclass")
# the metrics' names for people (the registry and the gate's reasons use the keys)
METRIC_LABELS = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "log_loss": "Log loss",
                 "brier": "Brier score", "lift_top_decile": "Lift in the top 10%",
                 "macro_f1": "Macro F1", "accuracy": "Accuracy",
                 "log_loss_multiclass": "Log loss"}
_METRIC_WORD = re.compile(r"\b(" + "|".join(sorted(METRIC_LABELS, key=len, reverse=True))
                          + r")\b")


def metric_label(key: str) -> str:
    return METRIC_LABELS.get(key, key)


def metric_words(text: str) -> str:
    """A sentence with every metric key in it named for people (a gate's reason)."""
    return _METRIC_WORD.sub(lambda m: METRIC_LABELS[m.group(1)], text or "")


@dataclass
class UiContext:
    """What the pages need from the app: the same objects the JSON routes use."""

    settings: Settings
    api: ApiSettings
    models: ServedModels
    registry: ModelRegistry
    lead_profile: Profile
    lead_struct: type
    plan_struct: type
    tiers: PublishedTiers
    customers: KnownCustomers  # the same lookup as GET /v1/customers/{id}/churn
    prices: PlanPrices  # the plan answers' price list, in its decided currency
    lead_displays: Mapping[str, FieldDisplay]


def static_url(path: str) -> str:
    return f"/ui/static/{path}"


def docs_assets() -> dict[str, str]:
    """The Swagger UI and ReDoc files, served by the app (no CDN)."""
    return {"swagger_js": static_url("vendor/swagger-ui/swagger-ui-bundle.js"),
            "swagger_css": static_url("vendor/swagger-ui/swagger-ui.css"),
            "swagger_preset": static_url("vendor/swagger-ui/swagger-ui-standalone-preset.js"),
            "redoc_js": static_url("vendor/redoc/redoc.standalone.js"),
            "favicon": f"<link rel='icon' type='image/svg+xml' href='{static_url('favicon.svg')}'>"}


def template_config() -> TemplateConfig:
    def setup(engine: JinjaTemplateEngine) -> None:
        env = engine.engine
        env.globals.update(static=static_url, when=when, points=points_text,
                           shown=format_value)
        env.filters["pct"] = lambda p: "" if p is None else f"{100 * float(p):.0f}%"
        env.filters["pct1"] = lambda p: "" if p is None else f"{100 * float(p):.1f}%"
        env.filters["num"] = lambda v, d=3: "–" if v is None else f"{float(v):.{d}f}"
        env.filters["metric"] = metric_label
        env.filters["figure"] = lambda v: "–" if v is None else format_number(float(v))
        env.filters["money"] = lambda v, currencies: money_text(
            float(v), Currency(tuple(currencies or ())).unit)
        env.filters["metric_words"] = metric_words

    return TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine,
                          engine_callback=setup)


def session_config(api_key: str) -> CookieBackendConfig:
    # the cookie's key comes from the API key: changing the key signs everybody out
    secret = hashlib.sha256(b"leadscore-ui-session\x00" + api_key.encode()).digest()
    # only the pages carry it: the API's routes never pay for the session middleware
    return CookieBackendConfig(secret=secret, key="leadscore_session", path="/ui",
                               httponly=True, samesite="lax", max_age=12 * 3600,
                               exclude=["^/v1/", "^/metrics", "^/schema", "^/health",
                                        "^/ready"])


def ui_router(ctx: UiContext) -> tuple[Router, list[Any]]:
    """Every ``/ui`` route, the static files, and the login when a key is configured; with
    the app-level middleware they need (the session cookie, scoped to ``/ui`` by its path)."""
    settings = ctx.settings
    lead_categorical = [snake(c) for c in ctx.lead_profile.features.categorical]
    lead_days = lead_window_days(settings, profile=ctx.lead_profile)  # the horizon stated
    open_leads_file = PublishedFile(
        open_leads_path(settings.serving_snapshot),
        lambda p: read_open_leads(p, lead_categorical, settings.exports_dir / LEAD_EXPORT))
    published = snapshot_dir(settings.warehouse)
    customer_scores = PublishedFile(snapshot_path(published, "scores.customers"),
                                    read_customer_scores)
    overview = ModelOverview(ctx.registry, settings.root / "monitoring")
    actions = {"High": ctx.api.action_high, "Medium": ctx.api.action_medium,
               "Low": ctx.api.action_low}
    lead_fields = [f for f in ctx.lead_struct.__struct_fields__ if f != "id"]

    def page(name: str, request: Request, **context: Any) -> Template:
        context.setdefault("nav", name.split("/")[0].removesuffix(".html"))
        context["authenticated"] = bool(settings.api_key)
        return Template(template_name=name, context=context)

    def is_fragment(request: Request) -> bool:
        return request.headers.get("hx-request") == "true"

    def label(field: str) -> str:
        original = next((s.original_name for s in _specs(ctx, LEAD_CONVERSION)
                         if s.name == field), field)
        return field_display(original, ctx.lead_displays).label

    # -- leads ------------------------------------------------------------------------------

    def lead_query(request: Request) -> LeadQuery:
        params = request.query_params
        filters = tuple((c, params.get(c, "")) for c in lead_categorical if params.get(c))
        try:
            number = int(params.get("page", "1"))
        except ValueError:
            number = 1
        return LeadQuery(tier=params.get("tier", ""), q=params.get("q", ""),
                         filters=filters, page=number)

    def plans_for(rows: list[dict[str, Any]]) -> list[str | None]:
        served = ctx.models.get(PLAN)
        if served is None or not rows:
            return [None] * len(rows)
        bodies = [_body(ctx.plan_struct, row) for row in rows]
        out, _ = recommend_plans(served, bodies, ctx.prices.current)
        return [o.plan for o in out]

    @get("/leads", name="ui-leads", include_in_schema=False)
    async def leads_page(request: Request) -> Template:
        leads: OpenLeads | None = open_leads_file.get()
        query = lead_query(request)
        context: dict[str, Any] = {"query": query, "categorical": lead_categorical,
                                   "label": label, "page_size": PAGE_SIZE, "leads": leads}
        if leads is not None:
            rows = select_leads(leads, query)
            shown, number, pages = page_of(rows, query.page)
            for row, plan in zip(shown, plans_for(shown), strict=True):
                row["plan"] = plan
            params = {"tier": query.tier, "q": query.q, **dict(query.filters)}
            context.update(rows=shown, total=len(rows), page=number, pages=pages,
                           params=urlencode({k: v for k, v in params.items() if v}),
                           options=leads.categories, open_total=len(leads.frame))
        name = "_leads_table.html" if is_fragment(request) else "leads.html"
        return page(name, request, nav="leads", **context)

    @get("/leads.csv", name="ui-leads-csv", include_in_schema=False)
    async def leads_csv(request: Request) -> Response:
        leads = open_leads_file.get()
        if leads is None:
            raise NotFoundException("no lead scores have been published yet")
        query = lead_query(request)
        export = settings.exports_dir / LEAD_EXPORT
        if not (query.tier or query.q or query.filters) and export.is_file():
            return File(export, filename=LEAD_EXPORT, media_type="text/csv")
        body = rows_as_csv(select_leads(leads, query), leads.export_columns)
        return Response(body, media_type="text/csv; charset=utf-8", headers={
            "content-disposition": f'attachment; filename="{LEAD_EXPORT}"'})

    @get("/leads/{lead_id:str}", name="ui-lead", include_in_schema=False)
    async def lead_page(request: Request, lead_id: FromPath[str]) -> Template:
        leads = open_leads_file.get()
        row = leads.by_id(lead_id) if leads is not None else None
        if row is None:
            raise NotFoundException(f"lead {lead_id!r} is not among the open leads")
        scored = score_one(row)
        fields = [(label(f), _shown(row.get(f), f, ctx)) for f in lead_fields if f in row]
        return page("lead.html", request, nav="leads", lead=row, scored=scored,
                    fields=fields, horizon=lead_days)

    def score_one(values: Mapping[str, Any]) -> dict[str, Any]:
        """What the API answers for these fields: score, reasons and plans."""
        served = ctx.models.get(LEAD_CONVERSION)
        if served is None:
            return {"error": "the lead model is not loaded yet"}
        body = _body(ctx.lead_struct, values)
        out, _ = score_leads(served, [body], ctx.tiers.bounds_for(served.name, served.version),
                             ctx.lead_displays)
        result: dict[str, Any] = {"score": out[0], "chart": _chart(out[0])}
        plan_model = ctx.models.get(PLAN)
        if plan_model is not None:
            plans, _ = recommend_plans(plan_model, [_body(ctx.plan_struct, values)],
                                       ctx.prices.current)
            result["plan"] = plans[0]
            result["plans"] = sorted(plans[0].probabilities.items(), key=lambda kv: -kv[1])
        return result

    # -- what if ----------------------------------------------------------------------------

    form_cache: dict[tuple[int, str | None], list[dict[str, Any]]] = {}

    def form_fields() -> list[dict[str, Any]]:
        """One input per field of the champion's request schema (kept per published file
        and model version: the categories and observed ranges do not change in between)."""
        leads = open_leads_file.get()
        served = ctx.models.get(LEAD_CONVERSION)
        key = (id(leads), served.version if served else None)
        if key not in form_cache:
            form_cache.clear()
            form_cache[key] = build_form_fields(leads)
        return form_cache[key]

    def build_form_fields(leads: OpenLeads | None) -> list[dict[str, Any]]:
        observed = leads.frame if leads is not None else None
        specs = {s.name: s for s in _specs(ctx, LEAD_CONVERSION)}
        out = []
        for name in lead_fields:
            spec = specs.get(name)
            kind = spec.kind if spec else _kind(ctx.lead_struct, name)
            item: dict[str, Any] = {"name": name, "label": label(name), "kind": kind}
            if kind == "categorical":
                # one option per category the model reads: as the leads spell it, else as
                # the model knows it
                options = {}
                if observed is not None and name in observed:
                    options = {normalise_category_value(v): v
                               for v in spellings(observed[name])}
                    counts = observed[name].dropna().astype(str).value_counts()
                    # the form starts from a typical lead: each field's most common value
                    item["typical"] = counts.index[0] if len(counts) else None
                for category in (spec.categories or []) if spec else []:
                    options.setdefault(normalise_category_value(category), category)
                item["options"] = sorted((v for k, v in options.items() if k is not None),
                                         key=str.lower)
            elif kind == "numeric" and observed is not None and name in observed:
                values = observed[name].dropna()
                if len(values):
                    item["min"], item["max"] = float(values.min()), float(values.max())
            unit = field_display(spec.original_name if spec else name, ctx.lead_displays).unit
            item["unit"] = unit  # how its values read (the options of a day of the week)
            if kind == "numeric" and unit == "time_of_day":
                item["kind"] = "time"  # people type 06:07, the model reads 6.1167
                item.pop("min", None), item.pop("max", None)
            out.append(item)
        return out

    @get("/score", name="ui-score", include_in_schema=False)
    async def score_page(request: Request) -> Template:
        fields = form_fields()
        values = {f["name"]: f.get("typical") for f in fields}
        return page("score.html", request, nav="score", fields=fields, values=values,
                    scored=score_one(values), horizon=lead_days)

    @post("/score", name="ui-score-update", include_in_schema=False, status_code=200)
    async def score_update(request: Request, data: Annotated[
            dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]) -> Template:
        fields = form_fields()
        values, problems = _form_values(data, fields)
        scored = score_one(values) if not problems else {"error": "; ".join(problems)}
        name = "_score_result.html" if is_fragment(request) else "score.html"
        return page(name, request, nav="score", scored=scored, fields=fields, values=values,
                    horizon=lead_days)

    # -- customers --------------------------------------------------------------------------

    @get("/customers", name="ui-customers", include_in_schema=False)
    async def customers_page(request: Request) -> Template | Redirect:
        params = request.query_params
        wanted = params.get("q", "").strip()
        ranked = customer_scores.get()
        context: dict[str, Any] = {"risk": params.get("risk", ""), "q": wanted,
                                   "actions": actions, "levels": RISK_ORDER,
                                   "ranked": ranked is not None, "sources": CHURN_SOURCES}
        if ranked is not None:
            frame = ranked
            if wanted:
                exact = frame[frame["customer_id"] == customer_key(wanted)]
                if len(exact) == 1 and not is_fragment(request):
                    return Redirect(f"/ui/customers/{quote(exact['customer_id'].iloc[0])}")
                frame = frame[frame["customer_id"].str.lower().str.contains(
                    wanted.lower(), regex=False)]
            if context["risk"]:
                frame = frame[frame["risk_level"] == context["risk"]]
            try:
                number = int(params.get("page", "1"))
            except ValueError:
                number = 1
            rows, number, pages = page_of(frame, number)
            for row in rows:
                known = ctx.customers.answers(row["customer_id"], (row["risk_model"],)).get(
                    row["risk_model"])
                row["why"] = ([*known.answer.reasons_for[:1], *known.answer.reasons_against[:1]]
                              if known else [])
            counts = ranked["risk_level"].value_counts().to_dict()
            context.update(rows=rows, page=number, pages=pages, total=len(frame),
                           counts={k: int(counts.get(k, 0)) for k in RISK_ORDER},
                           params=urlencode({k: v for k, v in (("q", wanted),
                                                               ("risk", context["risk"])) if v}))
        name = "_customers_table.html" if is_fragment(request) else "customers.html"
        return page(name, request, nav="customers", **context)

    @get("/customers/{customer_id:str}", name="ui-customer", include_in_schema=False)
    async def customer_page(request: Request, customer_id: FromPath[str]) -> Template:
        if not any(ctx.models.get(MODELS[k]) for k in CHURN_MODELS):
            return page("customer.html", request, nav="customers",
                        error="no churn model is loaded yet", customer_id=customer_id)
        answers = ctx.customers.answers(customer_id)
        if not answers:
            raise NotFoundException(f"customer {customer_id!r} is in no published customer "
                                    f"snapshot")
        keys = list(answers)
        # one risk level, by the one rule the batch scores use
        _, levels, deciding_keys = customer_risk(
            np.array([[answers[k].answer.probability for k in keys]]), keys,
            ctx.settings.churn_high, ctx.settings.churn_medium)
        deciding = answers[deciding_keys[0]]
        churn, features = deciding.answer, deciding.features
        facts = []
        displays = ctx.customers.displays.get(deciding.key)
        specs = ctx.models.get(MODELS[deciding.key]).specs
        for s in specs:
            shown = field_display(s.original_name, displays)
            facts.append((shown.label, record_value_text(features, s.name, shown.unit)
                          or "not given"))
        # what the customer paid and got back, in each currency, even where no model reads it
        facts += [(field_display(field, displays).label, amounts_text(by_currency))
                  for field, by_currency in record_amounts(features).items()
                  if by_currency and field not in {s.name for s in specs}]
        models = [{"source": CHURN_SOURCES[k], "probability": a.answer.probability,
                   "risk": a.answer.risk, "model": a.answer.model,
                   "version": a.answer.version, "deciding": k == deciding.key}
                  for k, a in answers.items()]
        return page("customer.html", request, nav="customers", customer_id=customer_id,
                    churn=churn, risk=levels[0], source=CHURN_SOURCES[deciding.key],
                    models=models, chart=_chart(churn, up_is_good=False), facts=facts,
                    action=actions.get(levels[0], ""))

    # -- models -----------------------------------------------------------------------------

    @get("/models", name="ui-models", include_in_schema=False)
    async def models_page(request: Request) -> Template:
        cards = []
        for key, registered in MODELS.items():
            if registered not in ctx.models.names:
                continue
            cards.append(_model_card(ctx, overview, key, registered))
        return page("models.html", request, nav="models", cards=cards)

    @get("/reports/{name:str}", name="ui-report", include_in_schema=False)
    async def drift_report(name: FromPath[str]) -> File:
        key = name.removesuffix(".html").removesuffix("_drift")
        path = overview.drift_report(key) if key in MODELS else None
        if path is None:
            raise NotFoundException(f"no drift report for {name!r} yet")
        return File(path, media_type="text/html; charset=utf-8",
                    content_disposition_type="inline")

    # -- sign-in ----------------------------------------------------------------------------

    @get("/login", name="ui-login", include_in_schema=False)
    async def login_page(request: Request) -> Template:
        return page("login.html", request, nav="login", next=_safe_next(
            request.query_params.get("next")), error=None)

    @post("/login", name="ui-login-post", include_in_schema=False, status_code=303)
    async def login(request: Request, data: Annotated[
            dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]
            ) -> Redirect | Template:
        target = _safe_next(data.get("next"))
        given = data.get("api_key", "").encode()
        if settings.api_key and hmac.compare_digest(given, settings.api_key.encode()):
            request.set_session({"signed_in": True})
            return Redirect(target, status_code=303)
        response = page("login.html", request, nav="login", next=target,
                        error="That key is not right.")
        response.status_code = 401
        return response

    @post("/logout", name="ui-logout", include_in_schema=False, status_code=303)
    async def logout(request: Request) -> Redirect:
        request.clear_session()
        return Redirect("/ui/login", status_code=303)

    @get("/", name="ui-home", include_in_schema=False)
    async def home() -> Redirect:
        return Redirect("/ui/leads")

    def signed_in(request: Request) -> Redirect | None:
        path = request.url.path
        if path.startswith(("/ui/static/", "/ui/login")):
            return None
        if request.session.get("signed_in") is True:
            return None
        here = path + (f"?{request.url.query}" if request.url.query else "")
        return Redirect(f"/ui/login?next={quote(here)}")

    handlers: list[Any] = [leads_page, leads_csv, lead_page, score_page, score_update,
                           customers_page, customer_page, models_page, drift_report, home,
                           create_static_files_router(path="/static", directories=[STATIC],
                                                      name="ui-static")]
    middleware: list[Any] = []
    before = None
    if settings.api_key:
        handlers += [login_page, login, logout]
        middleware.append(session_config(settings.api_key).middleware)
        before = signed_in
    def not_found(request: Request, exc: NotFoundException) -> Template:
        # a person followed a stale link: a page, not a JSON error body
        return Template(template_name="error.html", status_code=404, context={
            "detail": exc.detail, "nav": "", "authenticated": bool(settings.api_key)})

    return Router("/ui", route_handlers=handlers, before_request=before,
                  exception_handlers={NotFoundException: not_found},
                  include_in_schema=False), middleware


# -- helpers ----------------------------------------------------------------------------------


def _specs(ctx: UiContext, name: str) -> list[Any]:
    served = ctx.models.get(name)
    return served.specs if served is not None else []


def _kind(struct: type, name: str) -> str:
    """categorical | numeric | boolean, from the request type's field."""
    for f in msgspec.inspect.type_info(struct).fields:
        if f.name == name:
            t = f.type
            while isinstance(t, msgspec.inspect.Metadata):
                t = t.type
            members = getattr(t, "types", (t,))
            if any(isinstance(m, msgspec.inspect.FloatType) for m in members):
                return "numeric"
            if any(isinstance(m, msgspec.inspect.BoolType) for m in members):
                return "boolean"
    return "categorical"


def _body(struct: type, values: Mapping[str, Any]) -> Any:
    """A request body of ``struct`` from a row or a form (unknown keys dropped)."""
    known = struct.__struct_fields__
    return msgspec.convert({k: v for k, v in values.items() if k in known and v is not None},
                           struct, strict=False)


def _form_values(data: Mapping[str, str], fields: list[dict[str, Any]]
                 ) -> tuple[dict[str, Any], list[str]]:
    values: dict[str, Any] = {}
    problems = []
    for f in fields:
        raw = (data.get(f["name"]) or "").strip()
        if not raw:
            values[f["name"]] = None
        elif f["kind"] == "numeric":
            try:
                values[f["name"]] = float(raw)
            except ValueError:
                problems.append(f"{f['label']}: {raw!r} is not a number")
        elif f["kind"] == "time":
            hours, _, minutes = raw.partition(":")
            try:
                values[f["name"]] = int(hours) + int(minutes or 0) / 60
            except ValueError:
                problems.append(f"{f['label']}: {raw!r} is not a time of day")
        elif f["kind"] == "boolean":
            values[f["name"]] = raw.lower() in ("true", "yes", "1", "on")
        else:
            values[f["name"]] = raw
    return values, problems


def _shown(value: Any, field: str, ctx: UiContext) -> str:
    original = next((s.original_name for s in _specs(ctx, LEAD_CONVERSION) if s.name == field),
                    field)
    text = format_value(value, field_display(original, ctx.lead_displays).unit)
    return text or "not given"


def _chart(answer: Any, *, up_is_good: bool = True) -> list[dict[str, Any]]:
    """Bars for the reasons, largest effect first, widths relative to the largest; green for
    what helps (a lead converting; for churn, what lowers the risk), red for what hurts."""
    reasons = [*answer.reasons_for, *answer.reasons_against]
    top = max((abs(r.points) for r in reasons), default=0) or 1.0
    return [{"text": r.text, "points": r.points, "width": max(2.0, 100 * abs(r.points) / top),
             "side": "for" if (r.points > 0) == up_is_good else "against"}
            for r in sorted(reasons, key=lambda r: -r.points)]


def _safe_next(target: str | None) -> str:
    """Only a path inside the pages (no open redirect)."""
    if target and target.startswith("/ui/") and not target.startswith("//"):
        return target
    return "/ui/leads"


def _model_card(ctx: UiContext, overview: ModelOverview, key: str, registered: str
                ) -> dict[str, Any]:
    served = ctx.models.get(registered)
    versions = overview.versions(key)
    task = served.task if served else next(
        (v.tags.get("leadscore.task") for v in versions if v.tags.get("leadscore.task")),
        "binary")
    metric = PRIMARY_METRIC.get(task, "roc_auc")
    champion = next((v for v in versions if "champion" in v.aliases), None)
    held = (champion.metrics if champion else {}) or (served.metrics if served else {})
    history = []
    for v in versions:
        outcome = v.tags.get("leadscore.gate")
        if not outcome and "champion" not in v.aliases:
            continue
        history.append({"version": v.version, "created": when(v.created),
                        "profile": v.tags.get(TAG_PROFILE, ""),
                        "outcome": outcome or "champion", "aliases": v.aliases,
                        "reason": v.tags.get("leadscore.gate_reason", ""),
                        "score": v.metrics.get(metric),
                        "baseline": v.metrics.get(f"baseline_{metric}")})
    realised = overview.realised_rows(registered) + overview.realised_rows(key)
    windows = overview.windows(key, registered)
    drift = overview.drift(key)
    estimate = overview.estimate(key)
    shadowed = ctx.models.challenger(registered)
    challenger = next((v for v in versions if "challenger" in v.aliases), None)
    return {
        "key": key, "name": registered, "task": task, "metric": metric,
        "served": served, "version": served.version if served else None,
        "error": None if served else ctx.models.errors.get(registered, "loading"),
        "trained_at": when(served.trained_at) if served else "unknown",
        # the source profile the champion's training rows were typed with
        "profile": (champion.tags.get(TAG_PROFILE) if champion else None) or "not recorded",
        "score": held.get(metric), "baseline": held.get(f"baseline_{metric}"),
        "metrics": {k: v for k, v in held.items() if k in SHOWN_METRICS
                    and isinstance(v, int | float)} if held else {},
        "history": history, "realised": realised, "windows": windows,
        "plot": performance_svg(windows, _finite(held.get(metric))),
        "window_name": _window_name(windows),
        "drift": drift, "report": overview.drift_report(key) is not None,
        "estimate": estimate,
        "estimate_rows": summary_rows(estimate) if estimate else [],
        "estimate_realised": realised_rows(estimate) if estimate else [],
        # the challenger the API scores in the champion's shadow, and what that showed
        "shadowed": shadowed.version if shadowed else None,
        "challenger": challenger,
        "live": overview.live_evidence(key, served.version if served else None,
                                       shadowed.version if shadowed else None),
    }


def _window_name(windows: list[dict[str, Any]]) -> str:
    """``week`` or ``month``: what one window of the realised-performance plot spans."""
    if not windows:
        return "window"
    first = windows[0]
    days = (datetime.fromisoformat(first["window_end"])
            - datetime.fromisoformat(first["window_start"])).days
    return "week" if days < 7 else "month"


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None
