"""The prediction endpoints' direct path answers exactly as the Litestar handler would.

The middleware is exercised on its own (what it answers, what it hands on, with the body
intact), and the whole app is run twice against the same registry, with the direct path on
and off: every request, well-formed or not, gets the same status and the same body.
"""

from __future__ import annotations

import asyncio
import json

import msgspec
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from api.app import create_app
from api.config import LEAD_CONVERSION, PLAN, SNAPSHOT_CHURN, ApiSettings
from api.direct import DirectRoute
from tests.support.api_models import lead_frame, leads_payload, make_settings, wait_ready


class Item(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str | None = None
    size: float | None = None


def run_asgi(app, body_chunks: list[bytes], headers: list[tuple[bytes, bytes]] | None = None,
             method: str = "POST") -> tuple[list[dict], list[dict]]:
    """Send one request through ``app``; returns (messages sent, messages it received)."""
    messages = [{"type": "http.request", "body": c, "more_body": i < len(body_chunks) - 1}
                for i, c in enumerate(body_chunks)]
    received, sent = [], []

    async def receive():
        message = messages.pop(0) if messages else {"type": "http.disconnect"}
        received.append(message)
        scope["reads"] += 1
        return message

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": "/x", "headers": headers or [],
             "reads": 0}
    asyncio.run(app(scope, receive, send))
    return sent, received


def direct(answered: list, *, api_key: str | None = None, max_batch: int = 3,
           max_body: int = 1_000, loaded: bool = True):
    async def answer(scope, items):
        answered.append(list(items))
        return [{"size": i.size, "double": (i.size or 0) * 2} for i in items] if loaded else None

    handed_on: list[bytes] = []

    async def handler(scope, receive, send):
        scope["reads_before_handler"] = scope["reads"]
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        handed_on.append(body)
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b"handler"})

    route = DirectRoute(Item, answer, max_batch=max_batch, max_body=max_body, api_key=api_key,
                        inline_rows=128)
    return route(handler), handed_on


def test_a_plain_request_is_answered_without_the_handler():
    answered: list = []
    app, handed_on = direct(answered)
    sent, _ = run_asgi(app, [b'{"id": "a", "size": 2}'])
    assert sent[0]["status"] == 200
    assert json.loads(sent[1]["body"]) == {"size": 2.0, "double": 4.0}
    assert dict(sent[0]["headers"])[b"content-type"] == b"application/json"
    assert int(dict(sent[0]["headers"])[b"content-length"]) == len(sent[1]["body"])
    assert answered == [[Item(id="a", size=2.0)]] and handed_on == []
    # a batch is answered as a list, and a body in several chunks is joined
    sent, _ = run_asgi(app, [b'[{"size": 1}, {"si', b'ze": "3"}]'])
    assert json.loads(sent[1]["body"]) == [{"size": 1.0, "double": 2.0},
                                           {"size": 3.0, "double": 6.0}]


@pytest.mark.parametrize(("chunks", "why"), [
    ([b'{"size": "big"}'], "a field of the wrong type"),
    ([b'{"size": 1'], "not JSON"),
    ([b""], "no body"),
    ([b"[]"], "an empty batch"),
    ([b'[{"size": 1}, {"size": 2}, {"size": 3}, {"size": 4}]'], "a batch over the limit"),
    ([b'{"size": 1, "pad": "' + b"x" * 600, b'"}' + b" " * 600], "a body over the size limit"),
    ([b'"just text"'], "neither an object nor an array"),
])
def test_anything_else_reaches_the_handler_with_its_body_intact(chunks, why):
    answered: list = []
    app, handed_on = direct(answered)
    sent, _ = run_asgi(app, chunks)
    assert sent[0]["status"] == 418, why
    assert handed_on == [b"".join(chunks)], why
    assert answered == [], why


def _keep_scope(app, seen: list):
    async def keep(scope, receive, send):
        seen.append(scope)
        await app(scope, receive, send)
    return keep


def test_a_model_not_loaded_is_left_to_the_handler():
    answered: list = []
    app, handed_on = direct(answered, loaded=False)
    sent, _ = run_asgi(app, [b'{"size": 1}'])
    assert sent[0]["status"] == 418 and handed_on == [b'{"size": 1}']


def test_without_the_right_api_key_the_handler_answers():
    answered: list = []
    app, handed_on = direct(answered, api_key="s3cret")
    assert run_asgi(app, [b"{}"])[0][0]["status"] == 418
    assert run_asgi(app, [b"{}"], [(b"x-api-key", b"wrong")])[0][0]["status"] == 418
    assert run_asgi(app, [b"{}"], [(b"x-api-key", b"s3cret")])[0][0]["status"] == 200
    assert len(handed_on) == 2 and len(answered) == 1


def test_a_declared_length_over_the_limit_goes_to_the_handler_unread():
    answered: list = []
    app, handed_on = direct(answered, max_body=10)
    chunks = [b'{"size": ', b"12345678}"]
    scope_seen: list[dict] = []
    sent, received = run_asgi(_keep_scope(app, scope_seen), chunks,
                              [(b"content-length", b"18")])
    assert sent[0]["status"] == 418 and handed_on == [b'{"size": 12345678}']
    assert scope_seen[0]["reads_before_handler"] == 0  # the direct path read nothing
    assert len(received) == 2


# -- the whole app, direct path on and off ----------------------------------------------------


@pytest.fixture(scope="module")
def clients(store):
    pair = []
    with (TestClient(create_app(make_settings(store), api_settings=ApiSettings(
            max_batch=50, direct_path=True))) as on,
          TestClient(create_app(make_settings(store), api_settings=ApiSettings(
              max_batch=50, direct_path=False))) as off):
        for c in (on, off):
            wait_ready(c)
        pair = [on, off]
        yield pair


def same_answer(clients, path: str, body: bytes) -> dict | list | None:
    on, off = clients
    a = on.post(path, content=body, headers={"content-type": "application/json"})
    b = off.post(path, content=body, headers={"content-type": "application/json"})
    assert a.status_code == b.status_code, (body, a.text, b.text)
    assert a.headers["content-type"] == b.headers["content-type"]
    assert a.json() == b.json(), body
    return a.json() if a.status_code == 200 else None


def test_scores_plans_and_churn_are_identical_both_ways(clients):
    def answered() -> dict[str, int]:
        return {name: r.answered for name, r in clients[0].app.state.direct_routes.items()}

    before = answered()  # the apps are shared by this module's tests
    leads = leads_payload(lead_frame(40, 5))
    for path in ("/v1/leads/score", "/v1/leads/plan"):
        batch = same_answer(clients, path, json.dumps(leads).encode())
        assert batch is not None and len(batch) == 40
        one = same_answer(clients, path, json.dumps(leads[0] | {"id": "L-1"}).encode())
        assert one is not None and one["id"] == "L-1"
    customer = {"id": "C-9", "plan": "Elite", "tenure_months": "7", "logins_30d": 3,
                "support_tickets_90d": 4, "auto_renew": False}
    risk = same_answer(clients, "/v1/customers/churn", json.dumps(customer).encode())
    assert risk is not None and risk["risk"] in {"High", "Medium", "Low"}
    # the first app answered all five itself; the second has no direct path at all
    on, off = clients
    after = answered()
    assert {name: after[name] - before.get(name, 0) for name in after} == {
        LEAD_CONVERSION: 2, PLAN: 2, SNAPSHOT_CHURN: 1}
    assert off.app.state.direct_routes == {}


def test_errors_are_identical_both_ways(clients):
    lead = leads_payload(lead_frame(1, 6))[0]
    route = clients[0].app.state.direct_routes[LEAD_CONVERSION]
    before = route.answered
    for body in (b'{"business_size": 5}', b"{", b"", b"17", json.dumps([lead] * 51).encode()):
        assert same_answer(clients, "/v1/leads/score", body) is None
    assert same_answer(clients, "/v1/leads/score", b"[]") == []
    assert route.answered == before  # every one of them was the handler's


JSON = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers()
                    | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
FIELDS = st.sampled_from(["business_type", "business_size", "utm_source", "utm_medium",
                          "utm_campaign", "id", "other"])


@hypothesis_settings(max_examples=60, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(FIELDS, JSON, max_size=5) | st.lists(
    st.dictionaries(FIELDS, st.text(max_size=8) | st.none(), max_size=4), max_size=4))
def test_any_body_gets_the_same_answer_both_ways(clients, body):
    same_answer(clients, "/v1/leads/score", json.dumps(body).encode())
