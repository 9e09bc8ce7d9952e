"""The pages through Litestar's test client: what each page and fragment shows, against a
real registry and the files Dagster publishes (never the warehouse)."""

from __future__ import annotations

import csv
import html
import io
import re
from html.parser import HTMLParser

import pytest
from litestar.testing import TestClient

from api.app import create_app
from api.config import ApiSettings
from tests.support.api_models import make_settings, wait_ready

HX = {"HX-Request": "true"}


@pytest.fixture(scope="module")
def ui(store, published):  # noqa: F811
    app = create_app(make_settings(store), api_settings=ApiSettings(prediction_log=False))
    with TestClient(app) as client:
        wait_ready(client)
        yield client


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def lead_links(html: str) -> list[str]:
    return re.findall(r'href="/ui/leads/([^"?]+)"', html)


def test_lead_list_ranks_open_leads_by_score_with_tier_reasons_and_plan(ui, published):  # noqa: F811
    page = ui.get("/ui/leads")
    assert page.status_code == 200 and "<html" in page.text
    top = published.iloc[0]
    links = lead_links(page.text)
    assert len(links) == 25  # the first page
    assert links[0].replace("%40", "@") == top["lead_id"]
    body = text_of(page.text)
    assert f"{len(published)} leads" in body
    assert top["reason_for_1"] in body  # "Business Size is 50+: +9 points" style
    assert re.search(r"Plan to offer", page.text)
    assert re.search(r"<td>(Business|Elite|MVP|Now)</td>", page.text)


def test_search_finds_a_lead_by_company_name_email_or_id(ui, published):  # noqa: F811
    row = published.iloc[37]
    for needle in (row["company"], row["name"], row["email"].upper(), row["lead_id"]):
        found = ui.get("/ui/leads", params={"q": needle}, headers=HX)
        assert "<html" not in found.text  # a fragment for htmx
        ids = [i.replace("%40", "@") for i in lead_links(found.text)]
        assert row["lead_id"] in ids and len(ids) <= 2, needle


def test_filters_by_tier_and_by_a_categorical_field_and_pages(ui, published):  # noqa: F811
    a = ui.get("/ui/leads", params={"tier": "A"}, headers=HX).text
    ids = {i.replace("%40", "@") for i in lead_links(a)}
    assert ids == set(published.loc[published["tier"] == "A", "lead_id"].head(25))
    gyms = ui.get("/ui/leads", params={"business_type": "Gym"}, headers=HX).text
    want = published.loc[published["business_type"] == "Gym", "lead_id"]
    assert {i.replace("%40", "@") for i in lead_links(gyms)} == set(want.head(25))
    second = ui.get("/ui/leads", params={"page": 2}, headers=HX).text
    assert lead_links(second)[0].replace("%40", "@") == published.iloc[25]["lead_id"]


def test_download_is_the_lead_export_or_its_filtered_rows(ui, store, published):  # noqa: F811
    whole = ui.get("/ui/leads.csv")
    assert whole.content == (store["data_dir"] / "exports" / "lead_scores.csv").read_bytes()
    some = ui.get("/ui/leads.csv", params={"tier": "B"})
    rows = list(csv.DictReader(io.StringIO(some.text)))
    header = whole.text.splitlines()[0]
    assert some.text.splitlines()[0] == header
    assert {r["lead_id"] for r in rows} == set(published.loc[published["tier"] == "B",
                                                              "lead_id"])


def test_lead_page_shows_what_the_api_answers_for_that_lead(ui, published):  # noqa: F811
    row = published.iloc[3]
    fields = {k: row[k] for k in ("business_type", "business_size", "utm_source",
                                  "utm_medium", "utm_campaign") if isinstance(row[k], str)}
    api = ui.post("/v1/leads/score", json=fields).json()
    page = ui.get(f"/ui/leads/{row['lead_id']}").text
    assert re.search(rf'data-testid="score">{api["score"]}<', page)
    body = text_of(page)
    for reason in api["reasons_for"] + api["reasons_against"]:
        assert reason["text"] in body
    assert "within 30 days" in body
    assert f"version {api['version']}" in body
    plan = ui.post("/v1/leads/plan", json=fields).json()
    assert f"Plan to offer: {plan['plan']}" in body
    # the price in the currency the published payments are in
    assert (plan["currency"], plan["currencies"]) == ("USD", ["USD"])
    assert f"(${plan['monthly_price']:,.2f} a month)" in body
    for name in plan["probabilities"]:
        assert f"<td>{name}</td>" in page
    missing = ui.get("/ui/leads/nobody@example.com")
    assert missing.status_code == 404 and "<html" in missing.text
    assert "nobody@example.com" in missing.text and "is not among the open leads" in missing.text


def test_what_if_answers_with_the_api_score_for_the_form_fields(ui):
    form = {"business_type": "Cafe", "business_size": "1-5", "utm_medium": "email"}
    low = ui.post("/ui/score", data=form, headers=HX).text
    high = ui.post("/ui/score", data=form | {"business_size": "50+", "utm_medium": "cpc"},
                   headers=HX).text
    score = [int(re.search(r'data-testid="score">(\d+)<', t).group(1)) for t in (low, high)]
    api = [ui.post("/v1/leads/score", json=f).json()["score"]
           for f in (form, form | {"business_size": "50+", "utm_medium": "cpc"})]
    assert score == api and score[0] != score[1]
    page = ui.get("/ui/score").text
    assert '<select id="w-business_size"' in page and "<option value=\"50+\"" in page


def test_customers_are_ranked_by_churn_with_risk_and_suggested_action(ui):
    page = ui.get("/ui/customers").text
    chances = [int(x) for x in re.findall(r'<td class="num">(\d+)%</td>', page)]
    assert chances and chances == sorted(chances, reverse=True)
    assert "Call within a week" in page and "Standard engagement" in page
    # the first customer only the purchase activity knows: the page says what the API says
    first = re.search(r'href="/ui/customers/(170[0-3]\d)"', page).group(1)
    detail = ui.get(f"/ui/customers/{first}").text
    api = ui.get(f"/v1/customers/{first}/churn").json()
    assert f"{api['risk']} risk" in detail
    for reason in api["reasons_for"]:
        assert reason["text"] in text_of(detail)
    # looking up an exact id goes straight to the customer
    jump = ui.get("/ui/customers", params={"q": "17003.0"}, follow_redirects=False)
    assert jump.status_code in (301, 302, 303, 307) and jump.headers["location"].endswith(
        "/ui/customers/17003")


def account_fields(customer_id: str) -> dict:
    """The account snapshot's fields of one customer, as a client would post them."""
    from tests.support.api_models import customer_frame
    from tests.support.ui import SNAPSHOT_IDS

    row = customer_frame(len(SNAPSHOT_IDS), 31).iloc[SNAPSHOT_IDS.index(customer_id)]
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}


def test_customers_of_the_account_snapshot_model_are_listed_and_shown(ui):
    from tests.support.ui import SNAPSHOT_IDS

    listed = text_of(ui.get("/ui/customers").text)
    # 50 activity customers, 30 with an account snapshot only, 10 with both: one row each
    assert "80 customers" in listed
    found = ui.get("/ui/customers", params={"q": "acct0"}, headers=HX).text
    ids = re.findall(r'href="/ui/customers/([^"]+)"', found)
    assert sorted(ids) == sorted(i for i in SNAPSHOT_IDS if "ACCT0" in i)
    assert "account snapshot" in text_of(found)
    jump = ui.get("/ui/customers", params={"q": "7591-ACCT01"}, follow_redirects=False)
    assert jump.headers["location"].endswith("/ui/customers/7591-ACCT01")

    # the page answers what POST /v1/customers/churn answers for the account's fields
    api = ui.post("/v1/customers/churn", json=account_fields("7591-ACCT01")).json()
    detail = text_of(ui.get("/ui/customers/7591-ACCT01").text)
    assert f"{round(100 * api['probability'])}% chance it churns" in detail
    assert f"{api['risk']} risk from the account snapshot" in detail
    for reason in api["reasons_for"] + api["reasons_against"]:
        assert reason["text"] in detail
    assert ui.get("/ui/customers/0000-NOBODY").status_code == 404


def test_each_customer_states_the_horizon_of_the_model_that_scored_them(store, published):  # noqa: F811
    """With Telco's profile (its churn label: left within the last month), a customer only
    the account snapshots know is stated with that horizon, on the page and over the API;
    a purchase-activity customer keeps the activity horizon."""
    app = create_app(make_settings(store, customer_profile="telco"),
                     api_settings=ApiSettings(prediction_log=False))
    with TestClient(app) as client:
        wait_ready(client)
        api = client.get("/v1/customers/7591-ACCT01/churn").json()
        account = html.unescape(text_of(client.get("/ui/customers/7591-ACCT01").text))
        activity = text_of(client.get("/ui/customers/17000").text)
    telco = "churns (leaves, as the telco export's label says) within the next 30 days"
    assert api["horizon"] == telco
    assert f"chance it {telco}" in account
    assert "chance it churns (buys and pays nothing) within the next 90 days" in activity
    assert "30 days" not in activity


def test_a_customer_both_models_know_gets_one_risk_level_from_the_higher_chance(ui, store):
    settings = make_settings(store)
    activity = ui.get("/v1/customers/17045/churn").json()
    account = ui.post("/v1/customers/churn", json=account_fields("17045")).json()
    higher = max(activity["probability"], account["probability"])
    level = ("High" if higher >= settings.churn_high
             else "Medium" if higher >= settings.churn_medium else "Low")
    detail = text_of(ui.get("/ui/customers/17045").text)
    assert f"{round(100 * higher)}% chance" in detail and f"{level} risk" in detail
    for answer in (activity, account):
        assert f"{round(100 * answer['probability'])}% {answer['risk']}" in detail
    # the list holds the same one row, and names the other model's chance beside it
    row = ui.get("/ui/customers", params={"q": "1704"}, headers=HX).text
    assert re.search(rf'17045</a></td>\s*<td class="num">{round(100 * higher)}%</td>\s*'
                     rf'<td><span class="risk risk-{level}">', row)


def test_models_page_shows_champion_metrics_history_plot_and_drift_report(ui):
    page = ui.get("/ui/models").text
    assert "champion version 1" in page
    assert "Data has drifted" in page
    assert "<svg" in page


def test_the_models_page_names_its_metrics_for_people(ui):
    page = text_of(ui.get("/ui/models").text)
    assert "Held-out ROC-AUC" in page and "Held-out Macro F1" in page
    for key in ("roc_auc", "pr_auc", "log_loss", "lift_top_decile", "macro_f1"):
        assert key not in page, key


def test_realised_performance_is_plotted_over_calendar_time_with_the_estimate(ui):
    from tests.support.ui import OVER_TIME

    page = ui.get("/ui/models").text
    plot = re.search(r'data-testid="plot-lead_conversion".*?</svg>', page, re.S).group(0)
    realised = re.findall(r'<circle cx="([\d.]+)"[^>]*class="realised"><title>([^<]+)', plot)
    estimated = re.findall(r'<circle cx="([\d.]+)"[^>]*class="estimate"><title>([^<]+)', plot)
    # two weeks with outcomes of both kinds are realised; every week has its estimate
    assert [t.split(":")[0] for _, t in realised] == [
        "2026-02-02 to 2026-02-08, 40 predictions (version 1)",
        "2026-02-09 to 2026-02-15, 44 predictions (version 1)"]
    assert "realised ROC-AUC 0.760" in realised[0][1]
    assert len(estimated) == 3 and "estimated ROC-AUC 0.730 [0.670, 0.780]" in estimated[2][1]
    # x is calendar time: the gap of two empty weeks shows as distance, not as a next slot
    xs = [float(x) for x, _ in estimated]
    assert xs[2] - xs[1] == pytest.approx(3 * (xs[1] - xs[0]), rel=0.01)
    # the axis runs from the first window's first day to the day after the last one's
    ticks = re.findall(r'class="tick">([^<]+)</text>', plot)
    assert ticks[6] == "02 Feb 2026" and ticks[-1] == "09 Mar 2026"
    assert 'class="held-out"' in plot  # the champion's held-out ROC-AUC for reference
    assert "estimated from their probabilities alone (CBPE)" in page
    assert len(realised) + 1 == len(OVER_TIME)
    assert "Data has drifted" in page
    report = ui.get("/ui/reports/lead_conversion_drift.html")
    assert report.status_code == 200 and "Drift report: lead conversion" in report.text
    assert ui.get("/ui/reports/..%2Fmlflow.db").status_code == 404


class Inputs(HTMLParser):
    """Every form control, every label's target, and every id."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str]] = []
        self.labelled: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag in ("input", "select", "textarea") and a.get("type") != "hidden":
            self.controls.append(a)
        if tag == "label" and a.get("for"):
            self.labelled.add(a["for"])


@pytest.mark.parametrize("path", ["/ui/leads", "/ui/score", "/ui/customers", "/ui/models",
                                  "/ui/leads/lead-000@example.com", "/ui/customers/17000"])
def test_every_input_has_a_label_and_pages_have_landmarks(ui, path):
    html = ui.get(path).text
    found = Inputs()
    found.feed(html)
    for control in found.controls:
        assert control.get("id") in found.labelled or control.get("aria-label"), control
    assert '<main id="main"' in html and 'href="#main"' in html  # skip link for keyboards
    assert '<html lang="en">' in html


def test_api_docs_load_their_assets_from_the_app(ui):
    for path in ("/schema/swagger", "/schema/redoc"):
        html = ui.get(path).text
        urls = re.findall(r'(?:src|href)=["\']([^"\']+)["\']', html)
        assert urls and all(u.startswith("/ui/static/") for u in urls), urls
        for url in urls:
            assert ui.get(url).status_code == 200, url
    assert "fonts.googleapis" not in ui.get("/schema/redoc").text


def test_with_a_key_the_pages_ask_for_it_once(store, published):  # noqa: F811
    app = create_app(make_settings(store, api_key="s3cret"),
                     api_settings=ApiSettings(prediction_log=False))
    with TestClient(app) as client:
        wait_ready(client)
        away = client.get("/ui/leads?tier=A", follow_redirects=False)
        assert away.status_code in (302, 303, 307)
        assert away.headers["location"].startswith("/ui/login?next=/ui/leads")
        assert client.get("/ui/static/app.css").status_code == 200
        wrong = client.post("/ui/login", data={"api_key": "nope", "next": "/ui/leads"})
        assert wrong.status_code == 401 and "not right" in wrong.text
        assert client.get("/ui/models", follow_redirects=False).status_code in (302, 303, 307)
        ok = client.post("/ui/login", data={"api_key": "s3cret", "next": "/ui/leads?tier=A"},
                         follow_redirects=False)
        assert ok.status_code == 303 and ok.headers["location"] == "/ui/leads?tier=A"
        assert client.get("/ui/leads").status_code == 200
        assert client.get("/ui/leads.csv").status_code == 200
        # the session opens the pages, not the API
        assert client.post("/v1/leads/score", json={"business_size": "1-5"}).status_code == 401
        client.post("/ui/logout")
        assert client.get("/ui/leads", follow_redirects=False).status_code in (302, 303, 307)
        # an open redirect is not possible through next=
        ok = client.post("/ui/login", data={"api_key": "s3cret", "next": "//evil.example"},
                         follow_redirects=False)
        assert ok.headers["location"] == "/ui/leads"


def test_before_anything_is_published_the_pages_say_so(store, tmp_path):  # noqa: F811
    app = create_app(make_settings(store).model_copy(update={"data_dir": tmp_path / "empty"}),
                     api_settings=ApiSettings(prediction_log=False))
    with TestClient(app) as client:
        wait_ready(client)
        assert "No lead scores have been published yet" in client.get("/ui/leads").text
        assert client.get("/ui/leads.csv").status_code == 404
        assert "No churn scores yet" in client.get("/ui/customers").text
        assert "No served prediction has a known outcome yet" in client.get("/ui/models").text
        # the what-if form still works from the model alone
        page = client.get("/ui/score").text
        assert '<select id="w-business_size"' in page and 'data-testid="score"' in page


def test_what_if_form_values_are_read_as_the_model_expects():
    from api.ui.pages import _form_values

    fields = [{"name": "created_hour", "label": "Time of day", "kind": "time"},
              {"name": "seats", "label": "Seats", "kind": "numeric"},
              {"name": "auto_renew", "label": "Auto renew", "kind": "boolean"},
              {"name": "plan", "label": "Plan", "kind": "categorical"}]
    values, problems = _form_values({"created_hour": "06:07", "seats": "12",
                                     "auto_renew": "true", "plan": " Elite "}, fields)
    assert problems == []
    assert values == {"created_hour": 6 + 7 / 60, "seats": 12.0, "auto_renew": True,
                      "plan": "Elite"}
    values, problems = _form_values({"seats": "a dozen", "created_hour": ""}, fields)
    assert problems == ["Seats: 'a dozen' is not a number"]
    assert values["created_hour"] is None and values["plan"] is None


def test_models_page_shows_the_label_free_estimate_next_to_realised(ui, store):  # noqa: F811
    import numpy as np

    from leadscore_assets.monitoring.estimated import write_summary
    from leadscore_core.estimation import estimate

    rng = np.random.default_rng(1)
    p = rng.beta(2, 5, 800)
    window = estimate(p, p >= np.quantile(p, 0.75))
    held_out = estimate(p[:300], p[:300] >= np.quantile(p[:300], 0.75))
    auc = window["roc_auc"]
    write_summary(make_settings(store), "lead_conversion", {
        "model": "leadscore-lead-conversion", "champion_version": "1",
        "evaluated_at": "2026-12-01T10:00:00", "window_rows": 800, "top_tier": "tier A",
        "estimated_drop": False, "verdict": "no drop",
        "window": {k: vars(v) for k, v in window.items()},
        "held_out": {k: vars(v) for k, v in held_out.items()}, "held_out_realised": {},
        "estimate_vs_realised": [{"model": "lead_conversion", "version": "1",
                                  "metric": "roc_auc", "estimated": auc.value,
                                  "low": auc.low, "high": auc.high, "rows": 120,
                                  "realised": 0.7, "error": auc.value - 0.7,
                                  "within_interval": False}]})
    page = text_of(ui.get("/ui/models").text)
    assert "No estimated drop · 800 rows in the window" in page
    assert f"ROC-AUC {auc.value:.3f} [{auc.low:.3f}, {auc.high:.3f}]" in page
    assert "precision in tier A" in page
    assert "outcomes known for 120 served predictions" in page
    assert "outside the interval" in page


def test_customer_page_states_the_churn_horizon(ui):
    detail = text_of(ui.get("/ui/customers/17000").text)
    assert "chance it churns (buys and pays nothing) within the next 90 days" in detail


def test_models_page_says_which_profile_each_version_was_trained_on(store, store_copy):  # noqa: F811
    from mlflow import MlflowClient

    from leadscore_core.registry import MODELS, TAG_PROFILE

    lead = MODELS["lead_conversion"]
    version = store["versions"][lead]
    client = MlflowClient(store_copy, registry_uri=store_copy)
    client.set_model_version_tag(lead, version, TAG_PROFILE, "xeducation")
    app = create_app(make_settings({**store, "uri": store_copy}),
                     api_settings=ApiSettings(prediction_log=False))
    with TestClient(app) as ui:
        wait_ready(ui)
        page = ui.get("/ui/models").text
    assert re.search(r'data-testid="profile-lead_conversion">xeducation<', page)
    # a version registered before profiles were recorded says so, never a guess
    assert re.search(r'data-testid="profile-plan">not recorded<', page)
    history = text_of(page.split('id="m-lead_conversion"')[1].split("</section>")[0])
    assert f"v{version} (champion)" in history and "xeducation" in history
