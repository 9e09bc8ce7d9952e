"""The Litestar prediction API: lead scores, plan recommendations and churn risk.

``create_app`` reads the settings once, builds the request bodies from the active source
profiles and the champion models' features, and returns the app. Models are loaded in the
lifespan (``/ready`` answers 503 until every configured model is), then a background task
follows the registry alias so a newly promoted champion is served without a restart.

Handlers are defined inside ``create_app`` because their body types are built there; this
module therefore does not use postponed annotations (Litestar must see the real types).
"""

import asyncio
import contextlib
import functools
import gc
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Annotated, Any

import anyio.to_thread
import msgspec
from litestar import Litestar, MediaType, Request, Response, Router, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    ServiceUnavailableException,
    ValidationException,
)
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import RedocRenderPlugin, SwaggerRenderPlugin
from litestar.params import FromPath, JSONBody, KwargDefinition, Parameter
from litestar.status_codes import HTTP_413_REQUEST_ENTITY_TOO_LARGE

from api.config import (
    LEAD_CONVERSION,
    PLAN,
    SNAPSHOT_CHURN,
    ApiSettings,
)
from api.customers import FirstPublished, KnownCustomers
from api.direct import DirectRoute
from api.metrics import SCOPE_KEY, ApiMetrics
from api.models import MlflowRegistry, ModelRegistry, ModelWatcher, ServedModel, ServedModels
from api.schemas import (
    ChurnRisk,
    ErrorBody,
    LeadScore,
    ModelInfo,
    PlanRecommendation,
    Readiness,
    check_fields,
    has_features,
    merge_fields,
    model_fields,
    profile_fields,
    request_struct,
)
from api.scoring import (
    PlanPrices,
    Suggester,
    churn_risks,
    recommend_plans,
    records_of,
    score_leads,
    wants_suggestion,
)
from api.shadow import ShadowScorer
from api.snapshot import ServingSnapshot, SnapshotUnavailable
from api.ui.pages import UiContext, docs_assets, template_config, ui_router
from api.webhooks.config import WebhookSettings
from api.webhooks.receiver import WebhookReceiver
from api.webhooks.routes import webhook_router
from leadscore_core.horizons import churn_horizons, lead_horizon
from leadscore_core.money import (
    PaymentCurrencies,
    invoice_amount_currency,
    payment_currencies_path,
)
from leadscore_core.plans import PlanCatalogue
from leadscore_core.profiles import load_profiles, snake
from leadscore_core.published import customer_accounts_path
from leadscore_core.reasons import ReasonTexts, displays_for
from leadscore_core.registry import MODELS
from leadscore_core.settings import Settings, get_settings
from leadscore_core.tiers import CHURN_MODELS, PublishedTiers, lead_tiers_path, risk_rule
from leadscore_core.warehouse import snapshot_dir, snapshot_path

log = logging.getLogger("leadscore.api")

# Requests up to this many rows are scored on the event loop (a few ms at most); larger
# batches go to a worker thread so one big batch never stalls every other request.
INLINE_ROWS = 128
# How often answered requests are handed to the prediction log's writer.
LOG_HANDOVER_SECONDS = 0.1

_ERROR_MEANING = {
    400: "A field has the wrong type, the body is not JSON, or a lead has no field the "
         "model knows (each field and reason listed, with the expected fields)",
    401: "Missing or wrong X-API-Key header",
    404: "Unknown customer, or a model this API does not serve",
    413: "Batch larger than the configured limit, or body too large",
    503: "The model (or the serving snapshot) is not loaded yet",
}


# read from the scope by the answer functions (the direct path has no handler); declared on
# the handlers so that it is validated and documented
SuggestParam = Annotated[bool, Parameter(
    description="Also say the single change among the profile's actionable features that "
                "helps the score most, with the score after it")]


def _errors(*codes: int) -> dict[int, ResponseSpec]:
    return {c: ResponseSpec(data_container=ErrorBody, description=_ERROR_MEANING[c])
            for c in codes}


def create_app(settings: Settings | None = None, *, api_settings: ApiSettings | None = None,
               registry: ModelRegistry | None = None,
               webhook_settings: WebhookSettings | None = None) -> Litestar:
    """The API for ``settings`` (default: the environment) and a model registry (default:
    the MLflow registry at ``settings.mlflow_uri``)."""
    settings = settings or get_settings()
    api = api_settings or ApiSettings()
    hooks = webhook_settings or WebhookSettings()
    registry = registry or MlflowRegistry(settings.mlflow_uri)
    profiles = load_profiles(settings.user_profiles_dir)
    lead_profile = profiles[settings.profile_name("leads")]
    customer_profile = profiles[settings.profile_name("customers")]
    served_names = api.model_names

    # The champions' own features shape the request bodies; a model not registered yet is
    # described by its profile alone, and loaded by the lifespan when it appears.
    preloaded: dict[str, ServedModel] = {}
    for name in (LEAD_CONVERSION, PLAN, SNAPSHOT_CHURN):
        if name not in served_names:
            continue
        try:
            version = registry.version_for_alias(name, api.alias)
            if version is not None:
                preloaded[name] = ServedModel(name, version, registry.load(name, version))
        except Exception as exc:  # the API still starts; /ready tells the truth
            log.warning("champion of %s not readable at start-up: %s", name, exc)

    def fields_for(profile, name):
        found = preloaded.get(name)
        return merge_fields(profile_fields(profile),
                            model_fields(found.specs) if found else [])

    def bodies(name: str, profile, model: str, who: str) -> tuple[type, type]:
        """The documented request type and its strict twin for the direct path."""
        fields = fields_for(profile, model)
        about = f"your id for the {who} (echoed and logged)"
        return (request_struct(name, fields, id_description=about),
                request_struct(name, fields, id_description=about, forbid_unknown=True))

    Lead, StrictLead = bodies("Lead", lead_profile, LEAD_CONVERSION, "lead")
    PlanLead, StrictPlanLead = bodies("PlanLead", lead_profile, PLAN, "lead")
    Customer, StrictCustomer = bodies("Customer", customer_profile, SNAPSHOT_CHURN, "customer")
    # what the plan prices and the payment amounts are in: declared, else the payments'
    # (published by clean/payments; followed by the lifespan's task)
    catalogue = PlanCatalogue.load(settings.plan_catalogue_path)
    currencies = PaymentCurrencies(payment_currencies_path(settings.serving_snapshot),
                                   catalogue.currency)
    prices = PlanPrices(catalogue, currencies)
    lead_displays = displays_for(lead_profile.display)
    # the reasons' texts, remembered across requests (the same few values recur)
    lead_texts = ReasonTexts(lead_displays)
    customer_texts = ReasonTexts(displays_for(customer_profile.display,
                                              currencies.payment_amounts))

    def batch_of(item: type) -> Any:
        # the limit in the schema (maxItems) tells a client; the handler answers 413 above it
        return Annotated[list[item], KwargDefinition(max_items=api.max_batch)]

    metrics = ApiMetrics()
    state_models = ServedModels(served_names)
    max_body = api.max_batch * api.max_body_bytes_per_lead
    snapshot = ServingSnapshot(settings.serving_snapshot)
    tiers = PublishedTiers(lead_tiers_path(settings.serving_snapshot))
    risk = risk_rule(settings.churn_high, settings.churn_medium)
    # each churn model states its own horizon: a posted snapshot is scored by the snapshot
    # model (its profile's), a known customer by the model whose snapshot has them
    lead_within = lead_horizon(settings, lead_profile)
    churn_within = churn_horizons(settings, customer_profile)
    snapshot_within = churn_within["snapshot_churn"]
    # what the route and the customer pages look known customers up in: the activity
    # features (the serving snapshot) and the account snapshots' features as their files
    # spelled them (published by scores/customers; until then as the features stage
    # published them), all read-only
    known_customers = KnownCustomers(
        {"activity_churn": snapshot,
         "snapshot_churn": FirstPublished(
             ServingSnapshot(customer_accounts_path(settings.serving_snapshot)),
             ServingSnapshot(snapshot_path(snapshot_dir(settings.warehouse),
                                           "features.customer_snapshot")))},
        state_models, risk, churn_within,
        {"activity_churn": displays_for(None, invoices=invoice_amount_currency(
            settings.invoice_currency)), "snapshot_churn": customer_texts})
    suggesters: dict[tuple[str, str], Suggester] = {}

    def suggester(served: ServedModel, actionable: Sequence[str]) -> Suggester:
        key = (served.name, served.version)
        if key not in suggesters:
            suggesters.clear()  # one version per model is served at a time
            suggesters[key] = Suggester(served, actionable)
        return suggesters[key]

    def add_suggestions(scope: Any, served: ServedModel, out: Sequence[Any],
                        records: Callable[[], list[dict[str, Any]]],
                        actionable: Sequence[str], churn: bool) -> None:
        """``?suggest=true``: the one actionable change that helps each answer most
        (``records`` gives the answers' feature mappings, only when asked)."""
        if not wants_suggestion(scope) or not out:
            return
        found = suggester(served, actionable).suggest(
            records(), higher_is_better=not churn, risk=risk if churn else None)
        for answer, suggestion in zip(out, found, strict=True):
            answer.suggestion = suggestion

    def follow_currencies() -> None:
        if currencies.refresh():
            prices.refresh()
            customer_texts.use(displays_for(customer_profile.display,
                                            currencies.payment_amounts))

    # -- lifespan ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        models: ServedModels = app.state.models
        shadowing = api.shadow and api.prediction_log
        watcher = ModelWatcher(registry, models, api.alias, api.poll_seconds, shadow=shadowing)
        for served in preloaded.values():
            models.put(served)
        await anyio.to_thread.run_sync(receiver.start)
        writer = None
        if api.prediction_log:
            from leadscore_core.predlog import PredictionLogWriter

            writer = PredictionLogWriter(settings.predictions_dir,
                                         inbox=settings.inbox("predictions"))
        app.state.prediction_log = writer
        # the challenger's answers join the champion's on their way to the log
        shadow = (ShadowScorer(models, writer, tier_bounds=tiers.bounds_for, risk=risk)
                  if writer is not None and shadowing else None)
        app.state.shadow = shadow
        to_log = shadow.hand_over if shadow is not None else (
            writer.log_requests if writer is not None else None)
        # Requests only append to ``pending``; this task hands it to the writer in bursts, so
        # the writer thread wakes a few times a second rather than once per request (each
        # wake-up takes the GIL from the event loop).
        pending: list[tuple] = []
        app.state.pending_log = pending if writer is not None else None

        def hand_over() -> None:
            if to_log is None or not pending:
                return
            burst = pending[:]
            del pending[:len(burst)]
            to_log(burst)

        async def drain() -> None:
            while True:
                await asyncio.sleep(LOG_HANDOVER_SECONDS)
                hand_over()

        async def follow() -> None:
            while True:
                await watcher.refresh_once()
                with contextlib.suppress(Exception):
                    await anyio.to_thread.run_sync(snapshot.refresh)
                with contextlib.suppress(Exception):
                    await anyio.to_thread.run_sync(tiers.refresh)
                with contextlib.suppress(Exception):
                    await anyio.to_thread.run_sync(follow_currencies)
                await asyncio.sleep(api.poll_seconds)

        # Everything built so far (libraries, models, profiles: a few hundred thousand
        # objects) lives as long as the process; the collector no longer walks it on every
        # full collection, which otherwise stalls a request for tens of milliseconds.
        gc.collect()
        gc.freeze()
        task = asyncio.create_task(follow(), name="leadscore-model-watcher")
        drainer = asyncio.create_task(drain(), name="leadscore-prediction-log")
        app.state.watcher = watcher
        try:
            yield
        finally:
            for t in (task, drainer):
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            await anyio.to_thread.run_sync(receiver.stop)
            if writer is not None:
                hand_over()
                if shadow is not None:
                    await anyio.to_thread.run_sync(shadow.close)
                await anyio.to_thread.run_sync(writer.close)
            gc.unfreeze()

    # -- dependencies and helpers --------------------------------------------------------------

    def provide_models(state: State) -> ServedModels:
        return state.models

    def require(models: ServedModels, name: str) -> ServedModel:
        if name not in served_names:
            raise NotFoundException(f"model {name} is not served by this API")
        served = models.get(name)
        if served is None:
            why = models.errors.get(name, "loading")
            raise ServiceUnavailableException(f"model {name} not loaded yet ({why})")
        return served

    def as_batch(data: Any) -> tuple[Sequence[Any], bool]:
        if isinstance(data, list):
            if len(data) > api.max_batch:
                raise HTTPException(
                    status_code=HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                    detail=f"batch of {len(data)} exceeds the limit of {api.max_batch}")
            return data, True
        return [data], False

    async def ignored_fields(request: Request, struct: type) -> list[list[str]]:
        """Per item, the posted fields the model does not know; 400 when an item has none
        it knows (the handler path only: the direct path takes bodies without either)."""
        raw = msgspec.json.decode(await request.body())
        return check_fields(raw if isinstance(raw, list) else [raw], struct,
                            batch=isinstance(raw, list))

    async def answer_posted(request: Request, data: Any, models: ServedModels, name: str,
                            struct: type, answer) -> Any:
        """What a prediction handler answers: ``answer`` for each posted item, with the
        fields the model does not know reported back; one answer for one item."""
        served = require(models, name)
        items, batch = as_batch(data)
        ignored = await ignored_fields(request, struct)
        out = await answer(request.scope, served, items)
        for item, fields in zip(out, ignored, strict=True):
            if fields:
                item.ignored_fields = fields
        return out if batch else out[0]

    async def run(fn, rows: int, *args):
        if rows == 0:  # an empty batch has an empty answer (LightGBM rejects zero rows)
            return [], []
        if rows <= INLINE_ROWS:
            return fn(*args)
        return await anyio.to_thread.run_sync(fn, *args)

    def record(scope: Any, served: ServedModel, endpoint: str, log_rows,
               probabilities, outcomes) -> None:
        scope[SCOPE_KEY] = (served.name, served.version)
        metrics.observe_predictions(served.name, served.version, probabilities, outcomes)
        pending = app.state.pending_log
        if pending is not None:
            pending.append((time.time(), served.name, served.version, endpoint, log_rows))

    # -- what each prediction endpoint answers (shared by its handler and its direct path) -----

    score_lead_batch = functools.partial(score_leads, horizon=lead_within)

    async def lead_scores(scope: Any, served: ServedModel, leads: Sequence[Any]
                          ) -> list[LeadScore]:
        bounds = tiers.bounds_for(served.name, served.version)
        out, log_rows = await run(score_lead_batch, len(leads), served, leads, bounds,
                                  lead_texts)
        add_suggestions(scope, served, out, lambda: records_of(leads)[0],
                        lead_profile.actionable, churn=False)
        record(scope, served, "/v1/leads/score", log_rows, [r.probability for r in out],
               [r.tier for r in out])
        return out

    async def plan_recommendations(scope: Any, served: ServedModel, leads: Sequence[Any]
                                   ) -> list[PlanRecommendation]:
        out, log_rows = await run(recommend_plans, len(leads), served, leads, prices.current)
        record(scope, served, "/v1/leads/plan", log_rows,
               [r.probabilities[r.plan] for r in out], [r.plan for r in out])
        return out

    score_customers = functools.partial(churn_risks, displays=customer_texts,
                                        horizon=snapshot_within)

    async def posted_churn_risks(scope: Any, served: ServedModel, customers: Sequence[Any]
                                 ) -> list[ChurnRisk]:
        out, log_rows = await run(score_customers, len(customers), served, customers, risk)
        add_suggestions(scope, served, out, lambda: records_of(customers)[0],
                        customer_profile.actionable, churn=True)
        record(scope, served, "/v1/customers/churn", log_rows, [r.probability for r in out],
               [r.risk for r in out])
        return out

    lead_fields = set(Lead.__struct_fields__)

    async def webhook_lead_score(scope: Any, profile: str, record: dict[str, Any]
                                 ) -> LeadScore | None:
        """A lead that arrived by webhook, scored as ``/v1/leads/score`` would score it."""
        served = state_models.get(LEAD_CONVERSION) if LEAD_CONVERSION in served_names else None
        if served is None or profile != lead_profile.name:
            return None
        fields = {snake(k): v for k, v in record.items() if snake(k) in lead_fields}
        fields["id"] = None if (i := record.get(lead_profile.id.column)) is None else str(i)
        try:
            lead = msgspec.convert(fields, Lead, strict=False)
        except msgspec.ValidationError:
            return None  # stored all the same; cleaning decides what each value means
        return (await lead_scores(scope, served, [lead]))[0]

    receiver = WebhookReceiver(settings, hooks)
    webhooks = webhook_router(receiver, hooks, metrics, profiles, webhook_lead_score)

    direct_routes: dict[str, DirectRoute] = {}

    def direct(item: type, name: str, answer) -> list[DirectRoute]:
        """The route middleware answering plain requests without the handler pipeline."""
        if not api.direct_path:
            return []

        async def loaded(scope: Any, items: Sequence[Any]) -> list[Any] | None:
            served = state_models.get(name) if name in served_names else None
            return None if served is None else await answer(scope, served, items)

        route = DirectRoute(item, loaded, max_batch=api.max_batch, max_body=max_body,
                            api_key=settings.api_key, inline_rows=INLINE_ROWS,
                            accept=has_features)
        direct_routes[name] = route
        return [route]

    auth = (401,) if settings.api_key else ()
    batch_errors = _errors(400, 413, 503, *auth)

    # -- prediction endpoints ------------------------------------------------------------------

    @post("/leads/score", status_code=200, responses=batch_errors,
          middleware=direct(StrictLead, LEAD_CONVERSION, lead_scores),
          summary="Score one lead or a batch",
          description="Conversion probability, score 0-100, tier A-D and the top three reasons "
                      "for and against. Send one lead (an object) or a batch (an array, up to "
                      f"{api.max_batch}).")
    async def score(request: Request, data: JSONBody[Lead | batch_of(Lead)],
                    models: NamedDependency[ServedModels], suggest: SuggestParam = False,
                    ) -> LeadScore | list[LeadScore]:
        return await answer_posted(request, data, models, LEAD_CONVERSION, Lead, lead_scores)

    @post("/leads/plan", status_code=200, responses=batch_errors,
          middleware=direct(StrictPlanLead, PLAN, plan_recommendations),
          summary="Recommend a plan for a lead or a batch",
          description="The most likely plan, its price, and the probability of every plan.")
    async def plan(request: Request, data: JSONBody[PlanLead | batch_of(PlanLead)],
                   models: NamedDependency[ServedModels]
                   ) -> PlanRecommendation | list[PlanRecommendation]:
        return await answer_posted(request, data, models, PLAN, PlanLead,
                                   plan_recommendations)

    @post("/customers/churn", status_code=200, responses=batch_errors,
          middleware=direct(StrictCustomer, SNAPSHOT_CHURN, posted_churn_risks),
          summary="Churn risk from posted customer fields",
          description="Churn probability, risk level (High/Medium/Low) and the top reasons, "
                      "from the customer-snapshot model.")
    async def churn_posted(request: Request, data: JSONBody[Customer | batch_of(Customer)],
                           models: NamedDependency[ServedModels],
                           suggest: SuggestParam = False) -> ChurnRisk | list[ChurnRisk]:
        return await answer_posted(request, data, models, SNAPSHOT_CHURN, Customer,
                                   posted_churn_risks)

    @get("/customers/{customer_id:str}/churn", responses=_errors(404, 503, *auth),
         summary="Churn risk of a known customer",
         description="From the features Dagster publishes for the customer (read-only "
                     "snapshots), by the churn model that knows the customer, or, where "
                     "both do, by the one that gives the higher churn probability (the rule "
                     "of the customer export and pages); each answer states its model's "
                     "horizon.")
    async def churn_known(request: Request, customer_id: FromPath[str],
                          models: NamedDependency[ServedModels],
                          suggest: SuggestParam = False) -> ChurnRisk:
        keys = tuple(k for k in CHURN_MODELS if MODELS[k] in served_names)
        if not keys:
            raise NotFoundException("no churn model is served by this API")
        try:
            found = known_customers.find(customer_id, keys)
        except SnapshotUnavailable as exc:
            raise ServiceUnavailableException(str(exc)) from exc
        if not found:
            raise NotFoundException(f"customer {customer_id!r} is in no published customer "
                                    "snapshot")
        for each in found:
            require(models, MODELS[each.key])
        known = known_customers.riskiest(found, customer_id)
        if known is None:  # unloaded between require and score (a swap): never in practice
            raise ServiceUnavailableException("a churn model is not loaded yet")
        served = require(models, MODELS[known.key])
        add_suggestions(request.scope, served, [known.answer], lambda: [known.features],
                        customer_profile.actionable, churn=True)
        record(request.scope, served, "/v1/customers/{customer_id}/churn", known.log_rows,
               [known.answer.probability], [known.answer.risk])
        return known.answer

    @get("/models", responses=_errors(*auth),
         summary="The served model versions, when trained, held-out metrics")
    async def list_models(models: NamedDependency[ServedModels]) -> list[ModelInfo]:
        out = []
        for name in served_names:
            served = models.get(name)
            if served is None:
                out.append(ModelInfo(name=name, status="unavailable",
                                     error=models.errors.get(name, "loading")))
                continue
            out.append(ModelInfo(
                name=name, status="serving", version=served.version, alias=api.alias,
                task=served.task, trained_at=_text(served.trained_at),
                loaded_at=served.loaded_at, metrics=_plain(served.metrics),
                features=[s.name for s in served.specs],
                challenger=(c.version if (c := models.challenger(name)) else None)))
        return out

    # -- operations ----------------------------------------------------------------------------

    @get("/health", summary="The process is alive", include_in_schema=True)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @get("/ready", summary="Every configured model is loaded (503 until then)",
         responses={503: ResponseSpec(data_container=Readiness, description="Not ready yet")})
    async def ready(models: NamedDependency[ServedModels]) -> Response[Readiness]:
        status = {}
        for name in served_names:
            served = models.get(name)
            status[name] = served.version if served else models.errors.get(name, "loading")
        body = Readiness(ready=models.ready, models=status)
        return Response(body, status_code=200 if models.ready else 503)

    @get("/metrics", summary="Prometheus metrics", media_type=MediaType.TEXT,
         guards=[], include_in_schema=False)
    async def prometheus() -> Response[bytes]:
        payload, content_type = metrics.render()
        return Response(payload, media_type=content_type)

    # -- auth and errors -----------------------------------------------------------------------

    def api_key_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        given = connection.headers.get("x-api-key", "")
        if not hmac.compare_digest(given.encode(), (settings.api_key or "").encode()):
            raise NotAuthorizedException("missing or wrong X-API-Key header")

    guards = [api_key_guard] if settings.api_key else []
    v1 = Router("/v1", route_handlers=[score, plan, churn_posted, churn_known, list_models],
                guards=guards)
    protected_metrics = Router("/", route_handlers=[prometheus], guards=guards)
    pages, page_middleware = ui_router(UiContext(
        settings=settings, api=api, models=state_models, registry=registry,
        lead_profile=lead_profile, lead_struct=Lead, plan_struct=PlanLead, tiers=tiers,
        customers=known_customers, prices=prices, lead_displays=lead_displays))
    docs = docs_assets()

    app = Litestar(
        route_handlers=[v1, webhooks, protected_metrics, health, ready, pages],
        template_config=template_config(),
        lifespan=[lifespan],
        state=State({"models": state_models, "prediction_log": None,
                     "pending_log": None, "shadow": None}),
        dependencies={"models": Provide(provide_models, sync_to_thread=False)},
        exception_handlers={
            ValidationException: _validation_error,
            HTTPException: _http_error,
            Exception: _unexpected_error,
        },
        middleware=[metrics.middleware, *page_middleware],
        request_max_body_size=max_body,
        openapi_config=OpenAPIConfig(
            title="leadscore prediction API", version="1",
            description="Lead scores, plan recommendations and churn risk from the registry's "
                        "champion models.",
            path="/schema",
            # every script and style from the app itself: the docs work with no internet
            render_plugins=[
                SwaggerRenderPlugin(path="/swagger", js_url=docs["swagger_js"],
                                    css_url=docs["swagger_css"],
                                    standalone_preset_js_url=docs["swagger_preset"],
                                    favicon=docs["favicon"]),
                RedocRenderPlugin(path="/redoc", js_url=docs["redoc_js"], google_fonts=False,
                                  favicon=docs["favicon"]),
            ]),
    )
    app.state.metrics = metrics
    app.state.snapshot = snapshot
    app.state.api_settings = api
    app.state.lead_tiers = tiers
    app.state.direct_routes = direct_routes
    app.state.webhooks = receiver
    return app


# -- error bodies ------------------------------------------------------------------------------


def _validation_error(request: Request, exc: ValidationException) -> Response[ErrorBody]:
    """400 naming each field (with its position in a batch) and what is wrong with it."""
    problems = []
    cause = exc.__cause__
    if isinstance(cause, msgspec.ValidationError) and " - at `$" in str(cause):
        # msgspec's own message keeps the full path (``$.data[3].tenure``); Litestar's drops
        # the batch position.
        reason, _, path = str(cause).partition(" - at ")
        field = path.strip("`").removeprefix("$.data").lstrip(".") or "body"
        problems.append({"field": field, "reason": reason})
    for item in exc.extra if isinstance(exc.extra, list) and not problems else []:
        if isinstance(item, dict):
            field = item.get("key") or item.get("source") or "body"
            reason = item.get("message", "invalid")
            if field == "data" and reason == "'data'":
                field, reason = "body", "a JSON request body is required"
            problems.append({"field": field, "reason": reason})
    if not problems:
        problems.append({"field": "body", "reason": exc.detail})
    detail = "; ".join(f"{p['field']}: {p['reason']}" for p in problems)
    return Response(ErrorBody(400, f"invalid request: {detail}", problems), status_code=400)


def _http_error(request: Request, exc: HTTPException) -> Response[ErrorBody]:
    extra = exc.extra if isinstance(exc.extra, list | dict) else None
    headers = dict(exc.headers or {})
    return Response(ErrorBody(exc.status_code, exc.detail, extra), status_code=exc.status_code,
                    headers=headers)


def _unexpected_error(request: Request, exc: Exception) -> Response[ErrorBody]:
    if isinstance(exc, msgspec.ValidationError | msgspec.DecodeError):
        return Response(ErrorBody(400, f"invalid request: {exc}"), status_code=400)
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return Response(ErrorBody(500, "internal error; the request was not scored"),
                    status_code=500)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _plain(metrics: dict[str, Any]) -> dict[str, Any]:
    """Held-out metrics as JSON-safe values (non-finite numbers become null)."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
            out[key] = None
        else:
            out[key] = value
    return out
