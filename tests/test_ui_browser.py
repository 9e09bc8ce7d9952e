"""The pages in a real browser: Playwright driving Debian's Chromium (installed by
``make setup`` from Debian packages; no browser download) against a real server started with
``leadscore serve``, a real MLflow registry and the files Dagster publishes.

Each page's screenshot is written to ``test-artifacts/screenshots/`` (git-ignored)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from deploy.cluster.cluster import free_ports, stop_group

CHROMIUM = Path(os.environ.get("LEADSCORE_CHROMIUM", "/usr/bin/chromium"))
ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-artifacts" / "screenshots"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
# a name for the server other than localhost, as a deployment has (Chromium resolves it to
# the loopback): Swagger UI, for one, treats a localhost page differently
DOCS_HOST = "docs.leadscore.test"

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (make setup installs Debian's chromium)",
                allow_module_level=True)


def free_port() -> int:
    """A free port from the test range (``LEADSCORE_TEST_PORTS``, default 18400-18499)."""
    return int(free_ports(1, os.environ.get("LEADSCORE_TEST_PORTS", "18400-18499"))[0])


class Server:
    """``leadscore serve`` in its own process, stopped (its whole group) on close."""

    def __init__(self, data_dir: Path, uri: str, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environ = {**os.environ, "LEADSCORE_DATA_DIR": str(data_dir),
                   "LEADSCORE_MLFLOW_TRACKING_URI": uri,
                   "LEADSCORE_API_PREDICTION_LOG": "false",
                   "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", **env}
        environ.pop("LEADSCORE_API_KEY", None) if "LEADSCORE_API_KEY" not in env else None
        self.log = open(data_dir.parent / f"server-{self.port}.log", "wb")  # noqa: SIM115
        leadscore = shutil.which("leadscore", path=str(Path(sys.executable).parent))
        self.process = subprocess.Popen(
            [leadscore, "serve", "--port", str(self.port)], env=environ, cwd=ROOT,
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        # generous: on a loaded machine importing the API's libraries alone takes a while; a
        # server that exits is noticed at once
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        self.close()
        raise AssertionError(f"server did not become ready: "
                             f"{(data_dir.parent / f'server-{self.port}.log').read_text()}")

    def close(self) -> None:
        stop_group(self.process, grace=10)
        self.log.close()


@pytest.fixture(scope="module")
def server(store, published):  # noqa: F811
    running = Server(store["data_dir"], store["uri"])
    yield running
    running.close()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", f"--host-resolver-rules=MAP {DOCS_HOST} 127.0.0.1"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    # nothing may come from outside the app: any other host is refused and recorded
    outside: list[str] = []

    def guard(route) -> None:
        if route.request.url.startswith("http://127.0.0.1:"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    tab = context.new_page()
    tab.outside = outside
    yield tab
    context.close()
    assert not outside, f"requests outside the app: {outside}"


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def axe_violations(page) -> list[dict]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "where": [n["target"] for n in v["nodes"]][:3],
             "why": [n.get("failureSummary", "")[:200] for n in v["nodes"]][:1]}
            for v in result["violations"]]


def test_lead_list_loads_and_search_finds_a_known_lead(page, server, published):  # noqa: F811
    page.goto(f"{server.url}/ui/leads")
    rows = page.locator("#results tbody tr")
    assert rows.count() == 25
    top = published.iloc[0]
    assert top["lead_id"] in rows.first.inner_text()
    shot(page, "leads")
    target = published.iloc[41]
    page.evaluate("window.sameDocument = true")
    page.fill("#q", target["company"])
    page.wait_for_function("document.querySelectorAll('#results tbody tr').length <= 2")
    assert target["lead_id"] in page.locator("#results tbody").inner_text()
    assert page.evaluate("window.sameDocument") is True  # updated in place, no reload
    assert "q=" in page.url  # the filter is in the address, so it can be shared
    shot(page, "leads-search")
    assert axe_violations(page) == []


def test_lead_page_shows_the_same_score_and_reasons_as_the_api(page, server, published):  # noqa: F811
    row = published.iloc[5]
    fields = {k: row[k] for k in ("business_type", "business_size", "utm_source",
                                  "utm_medium", "utm_campaign") if isinstance(row[k], str)}
    api = httpx.post(f"{server.url}/v1/leads/score", json=fields).json()
    page.goto(f"{server.url}/ui/leads")
    page.click(f"a[href='/ui/leads/{row['lead_id'].replace('@', '%40')}']")
    page.wait_for_url("**/ui/leads/**")
    assert page.get_by_test_id("score").inner_text() == str(api["score"])
    assert page.get_by_test_id("tier").inner_text() == api["tier"]
    chart = page.locator(".chart").inner_text()
    for reason in api["reasons_for"] + api["reasons_against"]:
        assert reason["text"] in chart
    assert "converts within 30 days" in page.locator("main").inner_text()
    plan = httpx.post(f"{server.url}/v1/leads/plan", json=fields).json()
    # the price with the currency the published payments are in
    assert page.locator("#plan-price").inner_text() == f"(${plan['monthly_price']:,.2f} a month)"
    shot(page, "lead")
    assert axe_violations(page) == []


def settled_score(page, server) -> tuple[str, dict]:
    """The score the what-if page shows once it answers its form's current values.

    The API is asked for the same fields, and the page is awaited until it shows
    that answer, so an update still in flight for an earlier value is never read.
    """
    sent = page.evaluate("Object.fromEntries([...new FormData(document.querySelector("
                         "'main form')).entries()].filter(([k, v]) => v !== ''))")
    expected = str(httpx.post(f"{server.url}/v1/leads/score", json=sent).json()["score"])
    page.wait_for_function(
        "(s) => document.querySelector('[data-testid=score]').innerText === s", arg=expected)
    return expected, sent


def test_what_if_changes_the_score_when_a_field_changes(page, server):
    page.goto(f"{server.url}/ui/score")
    page.select_option("#w-business_type", "Cafe")
    page.select_option("#w-business_size", "1-5")
    page.select_option("#w-utm_medium", "email")
    page.evaluate("window.sameDocument = true")
    before, _ = settled_score(page, server)
    # the field takes focus first, as it does for a keyboard user
    page.focus("#w-business_size")
    page.select_option("#w-business_size", "50+")
    page.select_option("#w-utm_medium", "cpc")
    after, sent = settled_score(page, server)
    assert sent["business_size"] == "50+" and sent["utm_medium"] == "cpc"
    assert after != before
    assert page.evaluate("window.sameDocument") is True
    shot(page, "what-if")
    assert axe_violations(page) == []


def test_customers_and_models_pages(page, server):
    page.goto(f"{server.url}/ui/customers")
    assert page.locator("#results tbody tr").count() == 25
    shot(page, "customers")
    assert axe_violations(page) == []
    page.locator("#results tbody a").first.click()
    page.wait_for_url("**/ui/customers/**")
    assert page.get_by_test_id("risk").inner_text().endswith("risk")
    shot(page, "customer")
    page.goto(f"{server.url}/ui/models")
    plot = page.get_by_test_id("plot-lead_conversion").locator("svg")
    assert plot.is_visible() and plot.bounding_box()["height"] > 50
    assert plot.locator("circle.realised").count() == 2
    assert plot.locator("circle.estimate").count() == 3
    shot(page, "models")
    assert axe_violations(page) == []
    with page.expect_navigation():
        page.click("text=Open the drift report")
    assert "Drift report" in page.content()


def test_the_api_answers_a_customer_only_the_account_snapshots_know(page, server):
    """``GET /v1/customers/{id}/churn`` finds the customers the pages list, from the same
    published snapshots: an account-snapshot customer by the snapshot model, with the
    same chance and horizon the page states."""
    from api.config import ACTIVITY_CHURN, SNAPSHOT_CHURN

    answer = httpx.get(f"{server.url}/v1/customers/7591-ACCT01/churn")
    assert answer.status_code == 200, answer.text
    account = answer.json()
    assert account["model"] == SNAPSHOT_CHURN and account["id"] == "7591-ACCT01"
    assert account["horizon"].startswith("churns") and account["reasons_for"]
    page.goto(f"{server.url}/ui/customers/7591-ACCT01")
    assert page.get_by_test_id("churn").inner_text() == f"{100 * account['probability']:.0f}%"
    assert page.get_by_test_id("horizon").inner_text() == f"chance it {account['horizon']}"
    shot(page, "customer-account-snapshot")
    # a purchase-activity customer is still the activity model's; nobody is still 404
    activity = httpx.get(f"{server.url}/v1/customers/17003/churn").json()
    assert activity["model"] == ACTIVITY_CHURN
    assert httpx.get(f"{server.url}/v1/customers/0000-NOBODY/churn").status_code == 404


def test_the_models_page_reads_without_metric_keys(page, server):
    page.goto(f"{server.url}/ui/models")
    shown = page.locator("main").inner_text()
    assert "Held-out ROC-AUC" in shown
    for key in ("roc_auc", "pr_auc", "log_loss", "lift_top_decile", "macro_f1"):
        assert key not in shown, key
    shot(page, "models-metrics")


def test_the_pages_work_from_the_keyboard(page, server):
    page.goto(f"{server.url}/ui/leads")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    # tab to the tier filter and choose tier A with the keyboard
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "tier":
            break
    assert page.evaluate("document.activeElement.id") == "tier"
    page.select_option("#tier", "A")
    page.wait_for_function("[...document.querySelectorAll('#results .tier')]"
                           ".every(t => t.innerText === 'A')")
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.closest('#results tbody') !== null"):
            break
    href = page.evaluate("document.activeElement.getAttribute('href')")
    assert href and href.startswith("/ui/leads/")
    page.keyboard.press("Enter")
    page.wait_for_url("**/ui/leads/**")


DOCS_PAGES = (
    ("/schema", ".swagger-ui .opblock"),  # the root serves the first: Swagger UI
    ("/schema/swagger", ".swagger-ui .opblock"),
    ("/schema/redoc", "redoc, .redoc-wrap"),
    ("/schema/oauth2-redirect.html", None),
    ("/schema/openapi.json", None),
)


@pytest.mark.parametrize("host", ["127.0.0.1", DOCS_HOST])
def test_every_docs_page_renders_with_no_request_beyond_the_app(browser, server, host):
    """Each request every docs page makes is recorded: all of them go to the app."""
    origin = f"http://{host}:{server.port}"
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    requested: list[str] = []
    context.on("request", lambda request: requested.append(request.url))
    context.route("**/*", lambda route: route.continue_()
                  if route.request.url.startswith(origin + "/") else route.abort())
    tab = context.new_page()
    tab.set_default_timeout(120_000)  # megabytes of script, on a machine that may be busy
    try:
        for path, rendered in DOCS_PAGES:
            response = tab.goto(origin + path, wait_until="domcontentloaded")
            assert response is not None and response.status == 200, path
            if rendered:
                tab.wait_for_selector(rendered)
            tab.wait_for_load_state("networkidle")
            if path == "/schema/redoc":
                tab.wait_for_function("document.body.innerText.includes('Score one lead')")
                # its badge image comes from the app, and loads
                badge = tab.locator("img[alt='redocly logo']")
                badge.wait_for()
                assert badge.evaluate("img => img.complete && img.naturalWidth > 0")
                shot(tab, "redoc")
            if path == "/schema/swagger":
                assert "/v1/leads/score" in tab.locator(".swagger-ui").inner_text()
                shot(tab, "swagger")
    finally:
        context.close()
    outside = [u for u in requested if not u.startswith((origin + "/", "data:", "blob:"))]
    assert requested and outside == []


def test_with_a_key_the_pages_need_it(browser, store, published):  # noqa: F811
    guarded = Server(store["data_dir"], store["uri"], LEADSCORE_API_KEY="s3cret-key")
    try:
        context = browser.new_context()
        tab = context.new_page()
        tab.goto(f"{guarded.url}/ui/models")
        assert "/ui/login" in tab.url
        shot(tab, "login")
        tab.fill("#api_key", "wrong")
        tab.click("button[type=submit]")
        assert tab.get_by_role("alert").inner_text() == "That key is not right."
        tab.fill("#api_key", "s3cret-key")
        tab.click("button[type=submit]")
        tab.wait_for_url("**/ui/models")
        tab.goto(f"{guarded.url}/ui/leads")  # asked once: the session cookie holds
        assert tab.locator("#results tbody tr").count() == 25
        cookie = next(c for c in context.cookies() if c["name"] == "leadscore_session")
        assert cookie["httpOnly"] and cookie["path"] == "/ui"
        context.close()
    finally:
        guarded.close()
