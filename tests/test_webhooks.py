"""Webhooks: signed Stripe events and form submissions, stored once, sealed, landed.

Deliveries are signed here with Stripe's scheme written out (HMAC-SHA256 over
``timestamp.payload``), not with the library the endpoint verifies them with, and the events
are built from Stripe's own API fixture objects in ``../shared/data``.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import sqlite3
import time
from pathlib import Path
from urllib.parse import urlencode

import dagster as dg
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from dagster_duckdb import DuckDBResource
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from api.app import create_app
from api.config import LEAD_CONVERSION, ApiSettings
from api.webhooks.config import WebhookSettings
from leadscore_assets.clean.records import clean_records
from leadscore_assets.ingest.assets import land_file
from leadscore_assets.ingest.landing import LandingZone
from leadscore_assets.ingest.readers import read_export
from leadscore_assets.ingest.sensors import INBOX_SENSORS
from leadscore_core.profiles import load_profiles
from leadscore_core.serving import Encoder, ModelBundle
from leadscore_core.settings import Settings

SECRET = "whsec_test_7f3a9c2b5e1d4f6a8b0c"
OLD_SECRET = "whsec_test_rotated_out_0011223344"
FORM_SECRET = "form-secret-0123456789"
FORM_TOKEN = "form-token-9876543210"
STRIPE = "/v1/webhooks/stripe"
LANDING_TYPES = ("charge", "payment_intent", "refund", "dispute")  # README: Sources


# -- building deliveries -------------------------------------------------------------------------


def stripe_objects(shared_data: Path) -> dict[str, dict]:
    return json.loads((shared_data / "stripe_payment_objects_subset.json").read_text())


def events_from(objects: dict[str, dict]) -> list[dict]:
    """One event per object, in the envelope of the fixture's own event, plus that event."""
    template = next(o for o in objects.values() if o["object"] == "event")
    out = [template]
    for obj in objects.values():
        if obj["object"] == "event":
            continue
        event = copy.deepcopy(template)
        event["id"] = f"evt_{obj['id']}"
        event["type"] = f"{obj['object']}.{'succeeded' if obj['object'] == 'charge' else 'created'}"
        event["data"] = {"object": obj}
        out.append(event)
    return out


def sign(body: bytes, secret: str = SECRET, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def post_event(client: TestClient, event: dict, **sign_options):
    body = json.dumps(event, indent=2).encode()  # as Stripe sends it: pretty-printed
    return client.post(STRIPE, content=body, headers={
        "content-type": "application/json; charset=utf-8",
        "stripe-signature": sign(body, **sign_options)})


def hooks(**overrides) -> WebhookSettings:
    values = {
        "stripe_webhook_secret": f"{SECRET},{OLD_SECRET}",
        "form_webhooks": {"webform": {"auth": "hmac", "secret": FORM_SECRET},
                          "xeducation": {"auth": "token", "secret": FORM_TOKEN}},
        "webhook_max_body_bytes": 64 * 1024,
        "webhook_seal_seconds": 3_600,
    }
    values.update(overrides)
    return WebhookSettings(**values)


def make_app(data_dir: Path, registry=None, **hook_overrides):
    settings = Settings(data_dir=data_dir, mlflow_tracking_uri=f"sqlite:///{data_dir}/ml.db")
    served = LEAD_CONVERSION if registry is not None else ""
    return create_app(settings, api_settings=ApiSettings(models=served, prediction_log=False,
                                                         poll_seconds=0.2),
                      registry=registry or NoModels(), webhook_settings=hooks(**hook_overrides))


class NoModels:
    """A registry with nothing registered (the webhooks need no model)."""

    def version_for_alias(self, name: str, alias: str) -> str | None:
        return None

    def load(self, name: str, version: str) -> ModelBundle:
        raise LookupError(name)


def sealed(data_dir: Path, source: str) -> list[Path]:
    return sorted((data_dir / "inbox" / source).glob("*.jsonl"))


def stored_lines(data_dir: Path, source: str) -> list[dict]:
    return [json.loads(line) for path in sealed(data_dir, source)
            for line in path.read_text().splitlines()]


def metric(client: TestClient, source: str, outcome: str, reason: str = "") -> float:
    wanted = (f'leadscore_webhook_deliveries_total{{outcome="{outcome}",reason="{reason}",'
              f'source="{source}"}}')
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(wanted):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


# -- Stripe --------------------------------------------------------------------------------------


def test_signed_events_are_stored_once_and_land_by_the_payment_rules(shared_data, data_dir):
    events = events_from(stripe_objects(shared_data))
    with TestClient(make_app(data_dir)) as client:
        answers = [post_event(client, e) for e in events]
        assert [a.status_code for a in answers] == [200] * len(events)
        assert [a.json()["duplicate"] for a in answers] == [False] * len(events)
        # Stripe retries: the same event again, signed anew, with the rotated-out secret
        again = post_event(client, events[1], secret=OLD_SECRET)
        assert again.status_code == 200 and again.json() == {
            "received": True, "duplicate": True, "id": events[1]["id"]}
        assert metric(client, "stripe", "accepted") == len(events)
        assert metric(client, "stripe", "duplicate") == 1
    # closing the app sealed the open file into the payments inbox
    assert [e["id"] for e in stored_lines(data_dir, "payments")] == [e["id"] for e in events]
    assert stored_lines(data_dir, "payments") == events  # the events as sent
    assert not list((data_dir / "spool" / "stripe").glob("*.open"))

    files = sealed(data_dir, "payments")
    assert len(files) == 1
    export = read_export("payments", files[0], load_profiles())
    frame = export.frame
    # the payments rules: charges, payment intents, refunds and disputes land, unwrapped
    assert sorted(frame["object_type"]) == sorted(LANDING_TYPES)
    assert set(frame["event_id"]) == {f"evt_{o['id']}" for o in stripe_objects(shared_data).values()
                                      if o["object"] in LANDING_TYPES}
    # the payments sensor asks for a run of the sealed file; the run lands it
    landing = LandingZone(root=str(data_dir), settle_seconds=0)
    with dg.build_sensor_context(resources={"landing": landing},
                                 instance=dg.DagsterInstance.ephemeral()) as context:
        requests = INBOX_SENSORS["payments"](context).run_requests
    assert [r.tags["leadscore/file"] for r in requests] == [files[0].name]
    warehouse = DuckDBResource(database=str(data_dir / "warehouse.duckdb"))
    result = land_file("payments", files[0].name, landing=landing, warehouse=warehouse)
    assert result.success
    with warehouse.get_connection() as conn:
        landed = conn.execute("SELECT event_id, object_type FROM raw.payments "
                              "ORDER BY object_type").fetchall()
    assert [t for _, t in landed] == sorted(LANDING_TYPES)


@pytest.mark.parametrize("case, reason", [
    ("missing", "missing_signature"),
    ("wrong_secret", "bad_signature"),
    ("tampered", "bad_signature"),
    ("old", "stale_timestamp"),
    ("garbled_header", "bad_signature"),
])
def test_a_delivery_not_signed_by_stripe_is_refused_and_nothing_is_stored(
        shared_data, data_dir, case, reason):
    event = events_from(stripe_objects(shared_data))[1]
    body = json.dumps(event).encode()
    headers = {"content-type": "application/json", "stripe-signature": sign(body)}
    if case == "missing":
        del headers["stripe-signature"]
    elif case == "wrong_secret":
        headers["stripe-signature"] = sign(body, secret="whsec_somebody_else")
    elif case == "tampered":
        body = body.replace(b'"amount": 100', b'"amount": 1000000')
        assert body != json.dumps(event).encode()
    elif case == "old":
        headers["stripe-signature"] = sign(body, timestamp=int(time.time()) - 301)
    else:
        headers["stripe-signature"] = "v1=,t=yesterday"
    with TestClient(make_app(data_dir)) as client:
        answer = client.post(STRIPE, content=body, headers=headers)
        assert answer.status_code == 400, answer.text
        assert metric(client, "stripe", "rejected", reason) == 1
        assert metric(client, "stripe", "accepted") == 0
    assert sealed(data_dir, "payments") == []
    assert_ledger_empty(data_dir)


def assert_ledger_empty(data_dir: Path) -> None:
    with sqlite3.connect(data_dir / "spool" / "deliveries.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 0


def test_a_timestamp_within_the_tolerance_is_accepted(shared_data, data_dir):
    event = events_from(stripe_objects(shared_data))[2]
    with TestClient(make_app(data_dir)) as client:
        assert post_event(client, event, timestamp=int(time.time()) - 240).status_code == 200


@pytest.mark.parametrize("body, content_type, status, reason", [
    (b"not json at all", "application/json", 400, "not_json"),
    (b'["a list"]', "application/json", 400, "not_json"),
    (b'{"id": "evt_1", "object": "charge"}', "application/json", 400, "not_an_event"),
    (b'{"id": "evt_1", "object": "event", "type": "x"}', "text/plain", 415, "content_type"),
    (b'{"id": "evt_1", "object": "event", "type": "x", "pad": "' + b"x" * 70_000 + b'"}',
     "application/json", 413, "body_too_large"),
    (b'\xff\xfe{"id": 1}', "application/json", 400, "bad_signature"),
])
def test_bodies_that_are_not_events_get_4xx(data_dir, body, content_type, status, reason):
    with TestClient(make_app(data_dir)) as client:
        answer = client.post(STRIPE, content=body, headers={
            "content-type": content_type, "stripe-signature": sign(body)})
        assert answer.status_code == status, answer.text
        assert metric(client, "stripe", "rejected", reason) == 1
    assert sealed(data_dir, "payments") == []


def test_without_a_configured_secret_nothing_is_accepted(shared_data, data_dir):
    event = events_from(stripe_objects(shared_data))[1]
    with TestClient(make_app(data_dir, stripe_webhook_secret=None)) as client:
        answer = post_event(client, event)
        assert answer.status_code == 404 and "LEADSCORE_STRIPE_WEBHOOK_SECRET" in answer.text
    assert sealed(data_dir, "payments") == []


def test_the_same_event_is_a_duplicate_after_a_restart(shared_data, data_dir):
    event = events_from(stripe_objects(shared_data))[1]
    with TestClient(make_app(data_dir)) as client:
        assert post_event(client, event).json()["duplicate"] is False
    with TestClient(make_app(data_dir)) as client:
        assert post_event(client, event).json()["duplicate"] is True
    assert [e["id"] for e in stored_lines(data_dir, "payments")] == [event["id"]]


def test_files_are_sealed_every_n_records_while_the_server_runs(shared_data, data_dir):
    events = events_from(stripe_objects(shared_data))[:7]
    with TestClient(make_app(data_dir, webhook_seal_records=3)) as client:
        for event in events:
            assert post_event(client, event).status_code == 200
        client.app.state.webhooks.spool("stripe").flush()
        running = sealed(data_dir, "payments")
        assert [len(p.read_text().splitlines()) for p in running] == [3, 3]
    assert [len(p.read_text().splitlines()) for p in sealed(data_dir, "payments")] == [3, 3, 1]
    assert [e["id"] for e in stored_lines(data_dir, "payments")] == [e["id"] for e in events]


def test_a_file_is_sealed_when_its_first_record_is_t_seconds_old(shared_data, data_dir):
    event = events_from(stripe_objects(shared_data))[1]
    with TestClient(make_app(data_dir, webhook_seal_seconds=0.2)) as client:
        assert post_event(client, event).status_code == 200
        deadline = time.monotonic() + 10
        while not sealed(data_dir, "payments") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [e["id"] for e in stored_lines(data_dir, "payments")] == [event["id"]]


def test_webhooks_are_not_behind_the_api_key(shared_data, data_dir):
    settings = Settings(data_dir=data_dir, api_key="k" * 16,
                        mlflow_tracking_uri=f"sqlite:///{data_dir}/ml.db")
    app = create_app(settings, api_settings=ApiSettings(models="", prediction_log=False),
                     registry=NoModels(), webhook_settings=hooks())
    with TestClient(app) as client:
        assert client.get("/v1/models").status_code == 401
        assert post_event(client, events_from(stripe_objects(shared_data))[1]).status_code == 200


# -- forms ---------------------------------------------------------------------------------------

FORM = "/v1/webhooks/forms/webform"
SUBMISSION = {"email": "Ana@Example.com", "name": "Ana", "business_type": "Dental",
              "business_size": "11-50", "utm_source": "google", "utm_medium": "cpc",
              "message": "call me"}


def post_form(client: TestClient, fields: dict, *, encoded: bool = False, secret=FORM_SECRET,
              path: str = FORM, headers: dict | None = None):
    body = (urlencode(fields, doseq=True) if encoded else json.dumps(fields)).encode()
    mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return client.post(path, content=body, headers={
        "content-type": "application/x-www-form-urlencoded" if encoded else "application/json",
        "x-leadscore-signature": f"sha256={mac}", **(headers or {})})


def test_form_submissions_are_stored_once_and_land_as_the_profiles_leads(data_dir):
    second = {**SUBMISSION, "email": "bo@example.com", "business_type": "Cafe"}
    with TestClient(make_app(data_dir)) as client:
        first = post_form(client, SUBMISSION)
        assert first.status_code == 200, first.text
        assert first.json()["duplicate"] is False and first.json()["score"] is None
        assert post_form(client, SUBMISSION).json()["duplicate"] is True  # a retry
        assert post_form(client, second, encoded=True).json()["duplicate"] is False
        assert post_form(client, SUBMISSION, headers={"idempotency-key": "sub-2"}
                         ).json()["duplicate"] is False
        assert metric(client, "form:webform", "accepted") == 3
        assert metric(client, "form:webform", "duplicate") == 1
    lines = stored_lines(data_dir, "leads")
    assert [x["email"] for x in lines] == ["Ana@Example.com", "bo@example.com", "Ana@Example.com"]
    assert all(x["submitted_at"] for x in lines)  # dated on arrival: the form sent no date
    files = sealed(data_dir, "leads")
    assert len(files) == 1
    export = read_export("leads", files[0], load_profiles())
    assert export.stats["profile"] == "webform" and export.stats["format"] == "jsonl"
    assert list(export.frame["record_id"]) == ["Ana@Example.com", "bo@example.com",
                                               "Ana@Example.com"]
    assert json.loads(export.frame["record"][1])["business_type"] == "Cafe"
    # landed beside a CSV export of the same form, both clean together
    export_csv = data_dir / "inbox" / "leads" / "webform_export.csv"
    export_csv.write_text("submitted_at,email,business_type,business_size,utm_source\n"
                          "2026-01-04 01:00:36,cy@example.com,Gym,1-10,facebook\n")
    landing = LandingZone(root=str(data_dir), settle_seconds=0)
    warehouse = DuckDBResource(database=str(data_dir / "warehouse.duckdb"))
    for name in (files[0].name, export_csv.name):
        assert land_file("leads", name, landing=landing, warehouse=warehouse).success
    with warehouse.get_connection() as conn:
        raw = conn.execute("SELECT * FROM raw.leads").df()
    result, _ = clean_records(raw, "leads", load_profiles()["webform"])
    assert sorted(result.clean["lead_id"]) == ["ana@example.com", "bo@example.com",
                                               "cy@example.com"]
    assert result.clean["created_at"].notna().all()


@pytest.mark.parametrize("case, status, reason", [
    ("wrong_secret", 401, "bad_signature"),
    ("no_signature", 401, "missing_signature"),
    ("no_email", 422, "invalid_submission"),
    ("bad_date", 422, "invalid_submission"),
    ("nested", 400, "not_a_submission"),
    ("not_json", 400, "not_json"),
    ("multipart", 415, "content_type"),
])
def test_form_deliveries_that_cannot_be_used_are_refused(data_dir, case, status, reason):
    with TestClient(make_app(data_dir)) as client:
        if case == "wrong_secret":
            answer = post_form(client, SUBMISSION, secret="somebody-else's")
        elif case == "no_signature":
            answer = client.post(FORM, json=SUBMISSION)
        elif case == "no_email":
            answer = post_form(client, {k: v for k, v in SUBMISSION.items() if k != "email"})
        elif case == "bad_date":
            answer = post_form(client, {**SUBMISSION, "submitted_at": "the 5th of never"})
        elif case == "nested":
            answer = post_form(client, {**SUBMISSION, "utm_source": {"a": 1}})
        elif case == "not_json":
            body = b"email=ana"
            mac = hmac.new(FORM_SECRET.encode(), body, hashlib.sha256).hexdigest()
            answer = client.post(FORM, content=body, headers={
                "content-type": "application/json", "x-leadscore-signature": f"sha256={mac}"})
        else:
            answer = client.post(FORM, files={"email": ("a.txt", b"ana")})
        assert answer.status_code == status, answer.text
        assert metric(client, "form:webform", "rejected", reason) == 1
        if case in ("no_email", "bad_date"):
            field = "email" if case == "no_email" else "submitted_at"
            assert answer.json()["extra"][0]["field"] == field
    assert sealed(data_dir, "leads") == []
    assert_ledger_empty(data_dir)


def test_a_form_with_a_token_and_an_unknown_form(data_dir):
    fields = {"Prospect ID": "p-1", "Lead Number": "660737", "Lead Origin": "API",
              "Converted": "0"}
    with TestClient(make_app(data_dir)) as client:
        path = "/v1/webhooks/forms/xeducation"
        assert client.post(path, json=fields).status_code == 401
        ok = client.post(f"{path}?token={FORM_TOKEN}", json=fields)
        assert ok.status_code == 200, ok.text
        assert client.post(path, json={**fields, "Lead Number": "2"},
                           headers={"x-leadscore-token": FORM_TOKEN}).status_code == 200
        assert client.post("/v1/webhooks/forms/telco", json=fields).status_code == 404
        assert client.post("/v1/webhooks/forms/nope", json=fields).status_code == 404
    files = sealed(data_dir, "leads")
    export = read_export("leads", files[0], load_profiles())
    assert export.stats["profile"] == "xeducation"


class OneLeadModel:
    """A registry holding one lead-conversion champion trained here."""

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        n = 400
        frame = pd.DataFrame({
            "business_type": rng.choice(["Dental", "Cafe", "Gym"], n),
            "business_size": rng.choice(["1-10", "11-50", "50+"], n),
            "utm_source": rng.choice(["google", "facebook"], n)})
        y = ((frame.business_type == "Dental") | (rng.random(n) < 0.2)).astype(int)
        features = {c: "categorical" for c in frame.columns}
        encoder = Encoder.fit(frame, features, {c: c for c in frame.columns})
        X = encoder.transform_frame(frame)
        booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 4,
                             "min_data_in_leaf": 10, "num_threads": 1},
                            lgb.Dataset(X, y, categorical_feature=encoder.categorical_indices),
                            num_boost_round=10)
        self.bundle = ModelBundle(booster, encoder, "binary", ["0", "1"], None,
                                  metadata={"metrics": {}})
        self.bundle.set_tier_boundaries(ModelBundle.score(self.bundle.predict_proba(X)))

    def version_for_alias(self, name: str, alias: str) -> str | None:
        return "1" if name == LEAD_CONVERSION else None

    def load(self, name: str, version: str) -> ModelBundle:
        return self.bundle


def test_a_form_lead_is_scored_when_its_profiles_model_is_served(data_dir):
    registry = OneLeadModel()
    with TestClient(make_app(data_dir, registry=registry)) as client:
        answer = post_form(client, SUBMISSION)
        assert answer.status_code == 200, answer.text
        score = answer.json()["score"]
        direct = client.post("/v1/leads/score", json={
            "id": "ana@example.com", "business_type": "Dental", "business_size": "11-50",
            "utm_source": "google", "utm_medium": "cpc"}).json()
        assert score["score"] == direct["score"] and score["tier"] == direct["tier"]
        assert score["reasons_for"] == direct["reasons_for"]
        assert score["id"] == "Ana@Example.com" and score["tier"] in ("A", "B", "C", "D")
        # a submission for another profile is stored, not scored by this model
        other = client.post("/v1/webhooks/forms/xeducation",
                            json={"Prospect ID": "p", "Lead Number": "1"},
                            headers={"x-leadscore-token": FORM_TOKEN})
        assert other.status_code == 200 and other.json()["score"] is None


# -- never a 500 -----------------------------------------------------------------------------------

_headers = st.dictionaries(
    st.sampled_from(["content-type", "stripe-signature", "x-leadscore-signature",
                     "x-leadscore-token", "idempotency-key", "content-encoding"]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
    max_size=5)
_bodies = st.one_of(
    st.binary(max_size=300),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                 lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c,
                                                                      max_size=4),
                 max_leaves=12).map(lambda v: json.dumps(v).encode()))


def test_bad_input_never_gets_a_500(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("fuzz") / "data"
    with TestClient(make_app(data_dir)) as client:

        @hyp_settings(max_examples=300, deadline=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(path=st.sampled_from([STRIPE, FORM, "/v1/webhooks/forms/xeducation",
                                     "/v1/webhooks/forms/x%20y"]),
               body=_bodies, headers=_headers, signed=st.booleans())
        def deliver(path, body, headers, signed):
            if signed and path == STRIPE:
                headers = {**headers, "stripe-signature": sign(body)}
            elif signed:
                mac = hmac.new(FORM_SECRET.encode(), body, hashlib.sha256).hexdigest()
                headers = {**headers, "x-leadscore-signature": f"sha256={mac}",
                           "x-leadscore-token": FORM_TOKEN}
            answer = client.post(path, content=body, headers=headers)
            assert answer.status_code < 500, (
                answer.status_code, answer.text)

        deliver()


# -- recovery --------------------------------------------------------------------------------------


def test_recovery_seals_exactly_what_the_ledger_committed(tmp_path):
    """A writer that died (here: a pid that has exited) left an open file whose last batch
    never committed, and whose committed lines did not all reach the file (a power cut
    before the file was fsync'd): the sealed file holds the committed lines, in order."""
    import os
    import subprocess
    import sys

    from api.webhooks.ledger import DeliveryLedger, recover
    from leadscore_core.predlog import host_name

    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout)
    ledger = DeliveryLedger(tmp_path / "deliveries.sqlite")
    stem = f"stripe_events-20261201T100000-{host_name()}-{dead}-0007"
    committed = [b'{"id": "evt_1"}', b'{"id": "evt_2"}', b'{"id": "evt_3"}']
    ledger.conn.executemany(
        "INSERT INTO deliveries (source, key, file, line, received_at, body) "
        "VALUES ('stripe', ?, ?, ?, 0, ?)",
        [(f"evt_{i + 1}", stem, i + 1, line) for i, line in enumerate(committed)])
    spool, inbox = tmp_path / "spool", tmp_path / "inbox"
    spool.mkdir()
    # on disk: the first two committed lines, then an uncommitted one, then a torn line
    (spool / f"{stem}.jsonl.open").write_bytes(
        committed[0] + b"\n" + committed[1] + b"\n" + b'{"id": "evt_9"}\n{"id": "ev')
    alive = f"stripe_events-20261201T100000-{host_name()}-{os.getppid()}-0001"
    ledger.conn.execute("INSERT INTO deliveries VALUES ('stripe', 'evt_x', ?, 1, 0, 'x')",
                        (alive,))

    sealed = recover(ledger, "stripe", spool, inbox)
    assert [p.name for p in sealed] == [f"{stem}.jsonl"]
    assert sealed[0].read_bytes() == b"".join(line + b"\n" for line in committed)
    assert (spool / f"{stem}.jsonl.recovered").exists()
    assert ledger.unsealed_files("stripe") == [alive]  # its writer is still running
    assert recover(ledger, "stripe", spool, inbox) == []  # sealed once
