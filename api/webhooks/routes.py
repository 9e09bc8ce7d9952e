"""``POST /v1/webhooks/stripe`` and ``POST /v1/webhooks/forms/{profile}``.

Not behind the API key: each delivery proves its sender by its signature (Stripe's
``Stripe-Signature``, checked by the official ``stripe`` library; a form's HMAC or token).
Every refusal is a 4xx naming what is wrong, counted in ``/metrics`` by source and reason,
and stores nothing; a delivery is answered 2xx only once it is durable (see
:mod:`api.webhooks.ledger`), and the same delivery again is answered 2xx and stored once.

This module does not use postponed annotations: Litestar must see the handlers' real types.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import stripe
from litestar import Request, Response, Router, post
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, Parameter, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.params import FromPath

from api.metrics import ApiMetrics
from api.schemas import ErrorBody, LeadScore
from api.webhooks.config import WebhookSettings
from api.webhooks.forms import (
    FORM_ENCODED,
    JSON,
    Rejected,
    authenticate,
    delivery_key,
    parse_submission,
    submission_record,
)
from api.webhooks.ledger import DUPLICATE
from api.webhooks.receiver import STRIPE, SpoolUnavailable, WebhookReceiver, form_source
from leadscore_core.profiles import Profile

# (request scope, profile name, the submission's fields) -> the lead's score, or None when
# that profile's lead model is not served
ScoreLead = Callable[[Any, str, dict[str, Any]], Awaitable[LeadScore | None]]
_event = msgspec.json.Decoder(dict[str, Any])


class DeliveryReceipt(msgspec.Struct):
    received: bool
    duplicate: bool
    id: str


class FormReceipt(msgspec.Struct):
    received: bool
    duplicate: bool
    profile: str
    id: str | None
    # feature values the profile cannot read: stored as sent, quarantined by cleaning
    unreadable_values: dict[str, int]
    # the lead's score, tier and reasons when the profile's lead model is served
    score: LeadScore | None = None


_REFUSALS = {
    400: ResponseSpec(ErrorBody, description="Missing or bad signature, a timestamp outside "
                                             "the tolerance, or a body that is not an event"),
    401: ResponseSpec(ErrorBody, description="Missing or wrong form secret"),
    404: ResponseSpec(ErrorBody, description="No webhook is configured here (no Stripe secret, "
                                             "or no such form)"),
    413: ResponseSpec(ErrorBody, description="Body over the size limit"),
    415: ResponseSpec(ErrorBody, description="Content type not accepted"),
    422: ResponseSpec(ErrorBody, description="A submission the profile cannot use"),
    503: ResponseSpec(ErrorBody, description="Not stored (the spool is unavailable); retry"),
}


def _documented(body: dict[str, Schema], header: str, header_description: str
                ) -> type[Operation]:
    """An OpenAPI operation naming the raw body and the signature header the handler reads
    itself (the handler takes the bytes: a signature is over them exactly as sent)."""

    @dataclass
    class Documented(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                required=True, content={t: OpenAPIMediaType(schema=s) for t, s in body.items()})
            self.parameters = [*(self.parameters or []), Parameter(
                name=header, param_in="header", required=False, description=header_description,
                schema=Schema(type=OpenAPIType.STRING))]

    return Documented


_EVENT = Schema(type=OpenAPIType.OBJECT, required=["id", "object", "type"],
                description="A Stripe event, as Stripe sends it",
                properties={"id": Schema(type=OpenAPIType.STRING),
                            "object": Schema(type=OpenAPIType.STRING, const="event"),
                            "type": Schema(type=OpenAPIType.STRING),
                            "data": Schema(type=OpenAPIType.OBJECT)})
_SUBMISSION = Schema(type=OpenAPIType.OBJECT, description="Field name -> value (the profile's "
                     "export columns)", additional_properties=True)
STRIPE_OPERATION = _documented(
    {"application/json": _EVENT}, "Stripe-Signature",
    "t=<unix time>,v1=<hex HMAC-SHA256 of '<t>.<body>' with the endpoint secret>")
FORM_OPERATION = _documented(
    # also application/x-www-form-urlencoded (said in the route's description)
    {"application/json": _SUBMISSION},
    "X-Leadscore-Signature", "sha256=<hex HMAC-SHA256 of the body with the form's secret> "
    "(hmac forms; token forms: X-Leadscore-Token or ?token=)")


def webhook_router(receiver: WebhookReceiver, hooks: WebhookSettings, metrics: ApiMetrics,
                   profiles: dict[str, Profile], score_lead: ScoreLead) -> Router:
    limit = hooks.webhook_max_body_bytes

    def refuse(source: str, rejected: Rejected) -> Response[ErrorBody]:
        metrics.observe_delivery(source, "rejected", rejected.reason)
        headers = {"retry-after": "5"} if rejected.status == 503 else {}
        return Response(ErrorBody(rejected.status, str(rejected), rejected.problems),
                        status_code=rejected.status, headers=headers)

    async def read(request: Request, accepted: tuple[str, ...]) -> bytes:
        media_type = request.content_type[0].lower()
        if media_type not in accepted:
            raise Rejected(415, "content_type",
                           f"content type {media_type or 'missing'!r} not accepted "
                           f"(send {' or '.join(accepted)})")
        try:
            return await request.body()
        except RequestEntityTooLarge as exc:
            raise Rejected(413, "body_too_large",
                           f"body over the limit of {limit:,} bytes") from exc

    async def store(source: str, key: str, line: bytes) -> bool:
        """True when this delivery was seen before."""
        try:
            outcome = await receiver.deliver(source, key, line)
        except SpoolUnavailable as exc:
            raise Rejected(503, "not_stored", str(exc)) from exc
        duplicate = outcome == DUPLICATE
        metrics.observe_delivery(source, "duplicate" if duplicate else "accepted")
        return duplicate

    @post("/stripe", status_code=200, request_max_body_size=limit,
          operation_class=STRIPE_OPERATION,
          responses={c: _REFUSALS[c] for c in (400, 404, 413, 415, 503)},
          summary="Stripe webhook endpoint",
          description="A Stripe event, signed with the endpoint's secret "
                      "(LEADSCORE_STRIPE_WEBHOOK_SECRET). Answered 200 once stored durably; "
                      "the same event id again is answered 200 and stored once. Sealed into "
                      "data/inbox/payments/, where charge and payment_intent events land.")
    async def stripe_webhook(request: Request) -> Response[DeliveryReceipt]:
        try:
            body = await read(request, (JSON,))
            event = verify_stripe(body, request.headers.get("stripe-signature"),
                                  hooks.stripe_secrets, hooks.stripe_webhook_tolerance)
            duplicate = await store(STRIPE, event["id"], one_line(body))
        except Rejected as rejected:
            return refuse(STRIPE, rejected)
        return Response(DeliveryReceipt(True, duplicate, event["id"]), status_code=200)

    @post("/forms/{profile:str}", status_code=200, request_max_body_size=limit,
          operation_class=FORM_OPERATION,
          responses={c: _REFUSALS[c] for c in (400, 401, 404, 413, 415, 422, 503)},
          summary="Form-service webhook endpoint (one submission)",
          description="A submission as a JSON object of field names to values, or "
                      "form-encoded, for the named lead profile, authenticated by the form's "
                      "secret (LEADSCORE_FORM_WEBHOOKS). Sealed into data/inbox/leads/. When "
                      "the profile's lead model is served, the answer carries the lead's "
                      "score, tier and reasons.")
    async def form_webhook(request: Request, profile: FromPath[str]) -> Response[FormReceipt]:
        source = form_source(profile)
        received = datetime.now(UTC)
        try:
            form = hooks.form_webhooks.get(profile)
            lead_profile = profiles.get(profile)
            if form is None or lead_profile is None or lead_profile.source != "leads":
                raise Rejected(404, "unknown_form",
                               f"no form webhook is configured for profile {profile!r}")
            body = await read(request, (JSON, FORM_ENCODED))
            authenticate(form, request.headers, request.query_params, body)
            fields = parse_submission(request.content_type[0].lower(), body)
            record, unreadable = submission_record(lead_profile, fields, received)
            line = msgspec.json.encode(record)
            duplicate = await store(source, delivery_key(request.headers, body), line)
        except Rejected as rejected:
            return refuse(source if profile in hooks.form_webhooks else "form:unknown",
                          rejected)
        record_id = record.get(lead_profile.id.column)
        score = await score_lead(request.scope, profile, record)
        return Response(FormReceipt(True, duplicate, profile,
                                    None if record_id is None else str(record_id),
                                    unreadable, score), status_code=200)

    return Router("/v1/webhooks", route_handlers=[stripe_webhook, form_webhook],
                  tags=["webhooks"])


def verify_stripe(body: bytes, header: str | None, secrets: list[str], tolerance: int
                  ) -> dict[str, Any]:
    """The event, once ``stripe`` has verified its signature with one of the secrets."""
    if not secrets:
        raise Rejected(404, "not_configured",
                       "no Stripe webhook secret is configured (LEADSCORE_STRIPE_WEBHOOK_SECRET)")
    if not header:
        raise Rejected(400, "missing_signature", "missing Stripe-Signature header")
    reasons = []
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(body, header, secret, tolerance)
            break
        except stripe.SignatureVerificationError as exc:
            reasons.append(str(exc))
        except UnicodeDecodeError as exc:
            raise Rejected(400, "bad_signature", "body is not UTF-8 text") from exc
    else:
        if any("tolerance" in r for r in reasons):
            raise Rejected(400, "stale_timestamp",
                           f"signature timestamp older than {tolerance} s (a replay?)")
        if any("extract" in r for r in reasons):
            raise Rejected(400, "bad_signature", "Stripe-Signature header is malformed")
        raise Rejected(400, "bad_signature", "no signature matches the endpoint's secret")
    try:
        event = _event.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise Rejected(400, "not_json", f"body is not a JSON object: {exc}") from exc
    event_id = event.get("id")
    if (event.get("object") != "event" or not isinstance(event_id, str) or not event_id
            or len(event_id) > 255 or not isinstance(event.get("type"), str)):
        raise Rejected(400, "not_an_event",
                       "body is not a Stripe event (object 'event' with an id and a type)")
    return event


def one_line(body: bytes) -> bytes:
    """The JSON body on one line, byte for byte otherwise: a line break can only stand
    between tokens of valid JSON (inside a string it is escaped), so dropping them keeps
    the document."""
    return body.replace(b"\r", b"").replace(b"\n", b"")
