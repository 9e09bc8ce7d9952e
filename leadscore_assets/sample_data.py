"""Sample exports for all four sources: one year of a company selling monthly marketing plans.

The company sells the plans of the shipped catalogue (Business $150, Elite $250, MVP $350,
Now $500 a month, plus a one-off $399 setup fee usually charged with the first month) to
businesses of ten types and five sizes. ``write_sample_data`` simulates 2025 and writes what
such a company would export, in the formats real tools produce:

- ``leads/``: Formspree-style web-form exports, one CSV per quarter (``webform`` profile), and
  the leads of the last four weeks before the cut, still open (nobody has paid yet);
- ``payments/``: Stripe API objects, a JSON array of charges and payment intents up to
  September, then the webhook event log (JSON Lines) from October;
- ``invoices/``: add-on and usage invoice lines in the UCI Online Retail layout;
- ``customers/``: an account snapshot, one row per paying customer (``saas_accounts``); an
  account that left is described as it was when it left (``snapshot_date`` is its
  cancellation date, activity counts cover the 30/90 days before it), the others as of
  2026-01-31.

How the files join: a lead's email (case and spacing may differ) is the Stripe
``billing_details.email`` / ``receipt_email`` of its payments and the snapshot's ``email``; the
snapshot's ``customer_id`` (``10001``) is the invoices' ``CustomerID`` (written ``10001.0`` as in
the UCI file). A lead converted when a succeeded charge with its email follows within 30 days.

The relationships are built in so that models have something real to learn: conversion
depends on business type, size and the utm source/medium; the plan bought on size (bigger
buys pricier) and type; churn on engagement, which shows in logins, last login, support
tickets and in invoice frequency, which falls in the months before a customer cancels.
The files also carry the messiness of real exports: categories in odd case or with stray
spaces, a lead submitted twice, blank sizes, failed, refunded and disputed charges, the same
charge seen again in a ``charge.refunded`` event, cancellation invoices and blank customer ids.

Output is deterministic: the calendar is fixed (no clock), randomness comes from one seeded
generator, and gzip headers carry no timestamp, so a seed and scale always give the same
bytes. ``scale`` multiplies every volume; the invoice lines are built and written with numpy
and pyarrow so that ``scale=200`` (millions of lines) stays quick.

No Dagster imports here.
"""

from __future__ import annotations

import gzip
import heapq
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from leadscore_core.plans import PlanCatalogue

# -- the business ----------------------------------------------------------------------------

_CATALOGUE = PlanCatalogue.load()
_PLANS = sorted(_CATALOGUE.plans, key=lambda p: p.monthly_price)
PLAN_NAMES = tuple(p.name for p in _PLANS)
PLAN_CENTS = np.array([int(p.monthly_price * 100) for p in _PLANS])
SETUP_FEE_CENTS = int(_CATALOGUE.setup_fee * 100)

BUSINESS_TYPES = ("Medical", "Dental", "Legal", "Home Services", "Real Estate", "Fitness",
                  "Education", "Ecommerce", "Automotive", "Restaurant")
TYPE_SHARE = np.array([.11, .10, .09, .14, .10, .09, .08, .10, .08, .11])
# Log-odds of converting: practices that live on appointments buy, thin-margin trades do not.
TYPE_CONVERSION = np.array([.9, 1.1, .6, .3, -.1, -.6, -.9, -.4, 0., -1.2])

BUSINESS_SIZES = ("1-10", "11-50", "51-200", "201-500", "500+")
SIZE_SHARE = np.array([.38, .30, .18, .09, .05])
SIZE_CONVERSION = np.array([-1.1, 0., .7, 1.0, .6])
SEATS_RANGE = np.array([[1, 3], [2, 8], [5, 20], [10, 40], [20, 80]])

# (utm_source, utm_medium, campaigns, share of leads, log-odds of converting)
CHANNELS = (
    ("google", "cpc", ("search-brand", "search-generic", "competitors"), .26, .2),
    ("google", "organic", ("",), .14, .5),
    ("bing", "cpc", ("search-generic",), .05, .1),
    ("facebook", "paid_social", ("spring-promo", "retargeting", "lookalike"), .17, -.9),
    ("instagram", "paid_social", ("spring-promo", "reels"), .08, -1.1),
    ("linkedin", "paid_social", ("decision-makers",), .06, .3),
    ("newsletter", "email", ("monthly-digest", "webinar-invite"), .07, .9),
    ("partner", "referral", ("partner-program",), .05, 1.4),
    ("", "", ("",), .12, .5),  # direct: no utm parameters at all
)
CONVERSION_BASE = -2.0

# Plan choice: utility of plan k = base[k] + slope * size rank * k + type affinity[k] + noise.
PLAN_BASE = np.array([0., -.7, -2.1, -3.9])
PLAN_SIZE_SLOPE = .8
PLAN_TYPE_AFFINITY = np.array([
    [-.3, 0., .3, .4],   # Medical
    [-.2, .1, .3, .2],   # Dental
    [-.2, 0., .2, .5],   # Legal
    [.3, .2, -.2, -.4],  # Home Services
    [0., .3, .2, 0.],    # Real Estate
    [.4, .1, -.3, -.5],  # Fitness
    [.3, .2, -.2, -.5],  # Education
    [-.1, .4, .2, -.1],  # Ecommerce
    [.1, .3, 0., -.3],   # Automotive
    [.6, 0., -.5, -.8],  # Restaurant
])

# Add-ons billed on invoices: (StockCode, Description, UnitPrice, mean extra quantity, weight)
ADDONS = (
    ("ADD-SEAT", "EXTRA USER SEAT", "25.00", .5, .10),
    ("SMS-500", "SMS CREDITS PACK 500", "15.00", 1.0, .18),
    ("CALL-100", "CALL TRACKING MINUTES 100", "9.00", 2.0, .16),
    ("REV-REQ", "REVIEW REQUEST CAMPAIGN", "49.00", .2, .07),
    ("SEO-AUD", "SEO AUDIT REPORT", "99.00", 0., .04),
    ("LP-BUILD", "LANDING PAGE BUILD", "149.00", 0., .03),
    ("AD-MGMT", "AD CAMPAIGN MANAGEMENT HOUR", "75.00", 1.0, .08),
    ("EMAIL-10K", "EMAIL SENDS 10000", "19.00", .8, .12),
    ("CHAT-AI", "AI CHAT CONVERSATIONS 1000", "29.00", .5, .10),
    ("PHOTO-PK", "STOCK PHOTO PACK", "12.50", .3, .06),
    ("TRAIN-1H", "ONBOARDING TRAINING HOUR", "60.00", .2, .03),
    ("DOMAIN", "DOMAIN RENEWAL", "18.99", 0., .03),
)
COUNTRIES = (("United States", .92), ("Canada", .06), ("United Kingdom", .02))

# The calendar is fixed so that the output never depends on when it is generated.
LEADS_FROM = np.datetime64("2025-01-01T00:00:00", "s")
LEAD_DAYS = 365
EVENT_LOG_FROM = np.datetime64("2025-10-01T00:00:00", "s")  # payments from here: webhook events
SNAPSHOT_AT = np.datetime64("2026-01-31T23:59:59", "s")  # every export is cut here
BASE_LEADS = 3000
RECENT_LEAD_DAYS = 28  # leads of the last four weeks: their 30-day window is still open
CONVERSION_WINDOW_DAYS = 30

LEAD_HEADER = ("submitted_at", "email", "name", "company", "business_type", "business_size",
               "utm_source", "utm_medium", "utm_campaign", "message")
CUSTOMER_HEADER = ("customer_id", "email", "company", "business_type", "business_size", "plan",
                   "signup_date", "snapshot_date", "tenure_months", "monthly_fee", "seats",
                   "logins_30d", "active_users_30d", "support_tickets_90d",
                   "days_since_last_login", "auto_renew", "churned")
INVOICE_HEADER = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate",
                  "UnitPrice", "CustomerID", "Country")

FIRST_NAMES = ("James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda",
               "David", "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph",
               "Jessica", "Thomas", "Sarah", "Carlos", "Karen", "Daniel", "Lisa", "Matthew",
               "Nancy", "Anthony", "Sandra", "Mark", "Ashley", "Priya", "Emily", "Kevin",
               "Maria", "Brian", "Michelle", "Jose", "Amanda", "Wei", "Melissa", "Ryan",
               "Fatima")
LAST_NAMES = ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
              "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson",
              "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson",
              "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker",
              "Young", "Allen", "King", "Wright", "Scott", "Nguyen", "Hill", "Patel", "Chen")
COMPANY_WORDS = ("Summit", "Bright", "Oak", "Harbor", "Pioneer", "Riverside", "Maple",
                 "Evergreen", "Blue Sky", "Golden", "Northside", "Cedar", "Lakeside", "Metro",
                 "Liberty", "Sterling", "Redwood", "Coastal", "Prime", "Keystone", "Highland",
                 "Union", "Parkview", "Crescent", "Horizon", "Heritage", "Westfield", "Ironwood",
                 "Clearwater", "Sunrise", "Granite", "Willow", "Brookside", "Fairview", "Bayside",
                 "Canyon", "Apex", "Lighthouse", "Main Street", "Valley")
COMPANY_SUFFIXES = (
    ("Medical Group", "Family Clinic", "Health Partners", "Urgent Care"),
    ("Dental", "Family Dentistry", "Orthodontics", "Dental Studio"),
    ("Law Group", "Legal", "Law Offices", "Injury Lawyers"),
    ("Plumbing", "Roofing", "HVAC", "Landscaping", "Electric"),
    ("Realty", "Properties", "Home Group", "Real Estate"),
    ("Fitness", "CrossFit", "Yoga Studio", "Athletic Club"),
    ("Academy", "Learning Center", "Tutoring", "Prep School"),
    ("Goods", "Supply Co", "Outfitters", "Shop"),
    ("Auto Repair", "Motors", "Collision Center", "Tire and Auto"),
    ("Bistro", "Grill", "Kitchen", "Pizzeria", "Cafe"),
)
FREE_MAIL = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com")
MESSAGES = (
    "Interested in a demo.",
    "Can someone call me about pricing?",
    "We need more leads from Google, what do you recommend?",
    "Looking to replace our current agency.",
    "How does the setup fee work?",
    "Do you offer a discount for annual billing?",
    "We have two locations, is that one account or two?",
    'Saw your "free audit" offer on Facebook, still available?',
    "Please send info on the MVP plan, thanks",
    "Need help with online reviews, our rating dropped to 3.8",
    "Hi,\nwe spoke at the expo last week. Please send the proposal.",
    "just browsing",
)
DECLINES = (("card_declined", "Your card was declined.", "generic_decline"),
            ("insufficient_funds", "Your card has insufficient funds.", "insufficient_funds"),
            ("expired_card", "Your card has expired.", "expired_card"),
            ("incorrect_cvc", "Your card's security code is incorrect.", "incorrect_cvc"))
CARD_BRANDS = ("visa", "mastercard", "amex", "discover")


@dataclass(frozen=True)
class WrittenFile:
    source: str
    path: Path
    rows: int  # data rows (CSV), objects (JSON array) or lines (JSON Lines)


# -- entry points ----------------------------------------------------------------------------


def write_sample_data(inbox: Path, *, seed: int = 7, scale: float = 1.0,
                      gzip_invoices: bool = False) -> dict[str, list[Path]]:
    """Write sample exports into ``inbox/<source>/``; the written files per source."""
    written: dict[str, list[Path]] = {}
    for f in write_sample_files(inbox, seed=seed, scale=scale, gzip_invoices=gzip_invoices):
        written.setdefault(f.source, []).append(f.path)
    return written


def write_sample_files(inbox: Path, *, seed: int = 7, scale: float = 1.0,
                       gzip_invoices: bool = False) -> list[WrittenFile]:
    """Simulate one year of the business and write its exports; what was written, with rows.

    File names carry the seed (and the scale when it is not 1) so that differently seeded
    runs do not collide in one inbox. Each file is built in a staging folder and moved into
    place in one rename, so a folder watcher never sees a half-written file; a file already
    there with the same bytes is left alone, one with different bytes is an error (landing
    folders are never overwritten).
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    inbox = Path(inbox)
    tag = f"seed{seed}" + ("" if scale == 1 else f"-x{scale:g}")
    world = simulate(seed, scale)
    inbox.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".sample-staging-", dir=inbox))
    try:
        staged = [
            *_write_leads(world, staging, tag),
            *_write_payments(world, staging, tag),
            _write_invoices(world, staging, tag, gzip_invoices),
            _write_customers(world, staging, tag),
        ]
        targets = [inbox / f.source / f.path.name for f in staged]
        # All or nothing: check every target before the first file is moved in.
        for f, target in zip(staged, targets, strict=True):
            if target.exists() and not _same_bytes(target, f.path):
                raise FileExistsError(
                    f"{target} already exists with different content; sample files are "
                    f"never overwritten (choose another --inbox or --seed, or remove it)")
        for f, target in zip(staged, targets, strict=True):
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(f.path, target)
        return [WrittenFile(f.source, t, f.rows) for f, t in zip(staged, targets, strict=True)]
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _same_bytes(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with a.open("rb") as fa, b.open("rb") as fb:
        while chunk := fa.read(1 << 20):
            if chunk != fb.read(1 << 20):
                return False
    return True


# -- simulation ------------------------------------------------------------------------------


@dataclass
class World:
    """Everything simulated, before it is written out as exports."""

    rng: np.random.Generator
    people: pd.DataFrame  # one row per prospect, canonical values
    leads: pd.DataFrame  # one row per submission, as exported (messy), in time order
    customers: pd.DataFrame  # one row per paying customer, canonical values
    periods: pd.DataFrame  # one row per customer and billing month they began
    payments: pd.DataFrame  # one row per charge attempt, in time order


def simulate(seed: int, scale: float) -> World:
    """The year 2025 of the business, for ``BASE_LEADS * scale`` prospects."""
    rng = np.random.default_rng(seed)
    n = max(int(round(BASE_LEADS * scale)), 60)
    people = _people(rng, n)
    customers, periods = _buyers(rng, people)
    leads = _lead_export(rng, people, customers)
    payments = _payment_attempts(rng, people, customers, periods)
    return World(rng, people, leads, customers, periods, payments)


def _people(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """One row per prospect: who they are, how they came, and whether and what they bought."""
    btype = rng.choice(len(BUSINESS_TYPES), n, p=TYPE_SHARE)
    size = rng.choice(len(BUSINESS_SIZES), n, p=SIZE_SHARE)
    shares = np.array([c[3] for c in CHANNELS])
    channel = rng.choice(len(CHANNELS), n, p=shares / shares.sum())
    # Forms are filled in office hours more than at night.
    hour_w = np.array([1, 1, 1, 1, 1, 2, 4, 7, 10, 12, 12, 11, 10, 11, 11, 10, 9, 7, 6, 5, 4, 3,
                       2, 1], dtype=float)
    hour = rng.choice(24, n, p=hour_w / hour_w.sum())
    seconds = rng.integers(0, LEAD_DAYS, n) * 86400 + hour * 3600 + rng.integers(0, 3600, n)
    submitted = np.sort(LEADS_FROM + seconds.astype("m8[s]"))

    logit = (CONVERSION_BASE + TYPE_CONVERSION[btype] + SIZE_CONVERSION[size]
             + np.array([c[4] for c in CHANNELS])[channel] + rng.normal(0, .3, n))
    converted = rng.random(n) < 1 / (1 + np.exp(-logit))
    utility = (PLAN_BASE + PLAN_SIZE_SLOPE * size[:, None] * np.arange(len(PLAN_NAMES))
               + PLAN_TYPE_AFFINITY[btype] + rng.gumbel(size=(n, len(PLAN_NAMES))))
    plan = utility.argmax(axis=1)

    identity = _identities(rng, btype)
    n_campaigns = np.array([len(c[2]) for c in CHANNELS])
    campaigns = np.array([list(c[2]) + [""] * (n_campaigns.max() - len(c[2])) for c in CHANNELS],
                         dtype=object)
    campaign = campaigns[channel, (rng.random(n) * n_campaigns[channel]).astype(np.int64)]
    return identity.assign(submitted=submitted, btype=btype, size=size, channel=channel,
                           campaign=campaign, converted=converted, plan=plan)


def _identities(rng: np.random.Generator, btype: np.ndarray) -> pd.DataFrame:
    """Name, company and a unique email per prospect.

    Drawn as codes into small tables of names, so that a million prospects cost a handful of
    array look-ups rather than a million string operations.
    """
    n = len(btype)
    first = rng.integers(0, len(FIRST_NAMES), n)
    last = rng.integers(0, len(LAST_NAMES), n)
    # Owners often name the business after themselves.
    stems = np.array(COMPANY_WORDS + LAST_NAMES, dtype=object)
    stem = np.where(rng.random(n) < .3, len(COMPANY_WORDS) + last,
                    rng.integers(0, len(COMPANY_WORDS), n))
    suffixes = [s for group in COMPANY_SUFFIXES for s in group]
    offsets = np.cumsum([0] + [len(g) for g in COMPANY_SUFFIXES])
    counts = np.diff(offsets)
    suffix = offsets[btype] + (rng.random(n) * counts[btype]).astype(np.int64)
    companies = np.array([[f"{a} {b}" for b in suffixes] for a in stems], dtype=object)
    domains = np.array([[re.sub(r"[^a-z0-9]", "", f"{a}{b}".lower()) + ".com" for b in suffixes]
                        for a in stems], dtype=object).ravel()
    domains = np.concatenate([domains, np.array(FREE_MAIL, dtype=object)])
    domain = np.where(rng.random(n) < .3, domains.size - len(FREE_MAIL) + rng.integers(0, 4, n),
                      stem * len(suffixes) + suffix)
    locals_ = np.array([[[f"{f.lower()}.{la.lower()}", f"{f[0].lower()}{la.lower()}"]
                         for la in LAST_NAMES] for f in FIRST_NAMES], dtype=object).ravel()
    local = (first * len(LAST_NAMES) + last) * 2 + (rng.random(n) < .25)
    # Two people with the same address get a number, as mail providers do. Different codes
    # can spell the same address (Mary and Melissa Wright are both mwright), so compare text.
    _, local_text = np.unique(locals_, return_inverse=True)
    _, domain_text = np.unique(domains, return_inverse=True)
    key = local_text[local] * domains.size + domain_text[domain]
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    group_start = np.r_[0, np.flatnonzero(np.diff(sorted_key)) + 1]
    run = np.arange(n) - np.repeat(group_start, np.diff(np.r_[group_start, n]))
    clash = np.empty(n, np.int64)
    clash[order] = run
    email = [f"{lo}{c + 1 if c else ''}@{d}" for lo, c, d in
             zip(locals_[local], clash.tolist(), domains[domain], strict=True)]
    names = np.array([[f"{f} {la}" for la in LAST_NAMES] for f in FIRST_NAMES], dtype=object)
    return pd.DataFrame({"email": email, "name": names[first, last],
                         "company": companies[stem, suffix]})


def _add_months(t: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``t`` plus ``k`` calendar months, on the same day (the 28th at most) and time of day."""
    day = t.astype("M8[D]")
    month = t.astype("M8[M]")
    dom = (day - month.astype("M8[D]")).astype(np.int64)
    shifted = (month + k).astype("M8[D]") + np.minimum(dom, 27)
    return np.where(k == 0, t, shifted.astype("M8[s]") + (t - day.astype("M8[s]")))


def _buyers(rng: np.random.Generator, people: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Customers with their lifetime, and their scheduled monthly payments (periods)."""
    idx = np.flatnonzero(people["converted"].to_numpy())
    submitted = people["submitted"].to_numpy()[idx]
    delay = np.minimum(rng.gamma(1.4, 4.0, len(idx)), CONVERSION_WINDOW_DAYS - .05) * 86400
    first_pay = submitted + delay.astype(np.int64).astype("m8[s]")
    # Customer numbers follow sign-up order.
    order = np.flatnonzero(first_pay <= SNAPSHOT_AT)
    order = order[np.argsort(first_pay[order], kind="stable")]
    idx, first_pay = idx[order], first_pay[order]
    m = len(idx)
    size = people["size"].to_numpy()[idx]
    plan = people["plan"].to_numpy()[idx]

    engagement = rng.normal(0, 1, m) + .15 * size
    auto_renew = rng.random(m) < .82
    hazard = 1 / (1 + np.exp(-(-3.0 - .9 * engagement + .9 * ~auto_renew + .1 * plan)))
    paid_months = rng.geometric(hazard)  # months paid before cancelling, censoring aside
    span = ((SNAPSHOT_AT.astype("M8[M]") - first_pay.astype("M8[M]")).astype(np.int64))
    observable = span + (_add_months(first_pay, span) <= SNAPSHOT_AT)
    periods = np.minimum(paid_months, observable)
    churned = paid_months < observable
    churn_at = _add_months(first_pay, paid_months)
    setup = rng.choice(3, m, p=[.85, .08, .07])  # with first month | separate charge | waived

    lo, hi = SEATS_RANGE[size, 0], SEATS_RANGE[size, 1]
    seats = lo + (rng.random(m) * (hi - lo + 1)).astype(np.int64)
    # Engagement at the snapshot: it drops in the last month(s) before a customer leaves.
    about_to_leave = ~churned & (paid_months - periods <= 1)
    recent = engagement + rng.normal(0, .5, m) - 1.2 * churned - .7 * about_to_leave
    active_users = rng.binomial(seats, 1 / (1 + np.exp(-(.8 + .9 * recent))))
    logins = rng.poisson(active_users * 6 * np.exp(.35 * recent))
    last_login = np.where(
        logins == 0, 30 + rng.geometric(1 / 20, m),
        np.minimum(29, rng.exponential(30 / (logins + 1)).astype(np.int64)))
    tickets = rng.poisson(.4 + .08 * np.sqrt(seats) + .9 * np.maximum(0, -recent))
    country = rng.choice(len(COUNTRIES), m, p=[c[1] for c in COUNTRIES])

    snapshot = np.where(churned, churn_at, SNAPSHOT_AT)
    customers = pd.DataFrame({
        "person": idx, "customer_id": 10001 + np.arange(m), "first_pay": first_pay,
        "plan": plan, "size": size, "engagement": engagement, "auto_renew": auto_renew,
        "paid_months": paid_months, "periods": periods, "churned": churned,
        "churn_at": churn_at, "snapshot": snapshot, "setup": setup, "seats": seats,
        "active_users": active_users, "logins": logins, "last_login": last_login,
        "tickets": tickets, "country": country,
    })
    cust = np.repeat(np.arange(m), periods)
    k = np.arange(len(cust)) - np.repeat(np.cumsum(periods) - periods, periods)
    start = _add_months(first_pay[cust], k)
    end = np.minimum(_add_months(first_pay[cust], k + 1), snapshot[cust])
    periods = pd.DataFrame({"customer": cust, "k": k, "start": start, "end": end})
    return customers, periods


def _lead_export(rng: np.random.Generator, people: pd.DataFrame,
                 customers: pd.DataFrame) -> pd.DataFrame:
    """The leads as the form tool exports them, with the noise of real submissions."""
    n = len(people)
    sizes = np.array(BUSINESS_SIZES, dtype=object)[people["size"].to_numpy()]
    sizes[rng.random(n) < .03] = ""
    messages = np.array(MESSAGES, dtype=object)[rng.integers(0, len(MESSAGES), n)]
    messages[rng.random(n) < .35] = ""
    out = pd.DataFrame({
        "submitted": people["submitted"].to_numpy(),
        "email": people["email"].to_numpy(dtype=object),
        "name": people["name"].to_numpy(dtype=object),
        "company": people["company"].to_numpy(dtype=object),
        "business_type": np.array(BUSINESS_TYPES, dtype=object)[people["btype"].to_numpy()],
        "business_size": sizes,
        "utm_source": np.array([c[0] for c in CHANNELS], dtype=object)[people["channel"]],
        "utm_medium": np.array([c[1] for c in CHANNELS], dtype=object)[people["channel"]],
        "utm_campaign": people["campaign"].to_numpy(dtype=object),
        "message": messages,
    })
    out["business_type"] = _scuff(rng, out["business_type"], .04)
    out["utm_source"] = _scuff(rng, out["utm_source"], .02)
    shouty = rng.random(n) < .02
    out.loc[shouty, "email"] = out.loc[shouty, "email"].str.title()

    # Some people send the form again a little later; the export holds both submissions.
    again = np.flatnonzero(rng.random(n) < .02)
    dup = out.iloc[again].copy()
    later = rng.integers(3600, 10 * 86400, len(again))
    # A buyer asks again before paying, not after: the latest submission still opens the
    # 30-day window that its first payment falls in.
    paid_after = np.full(n, np.iinfo(np.int64).max)
    paid_after[customers["person"].to_numpy()] = (
        customers["first_pay"].to_numpy() - people["submitted"].to_numpy()[
            customers["person"].to_numpy()]).astype("m8[s]").astype(np.int64)
    later = np.minimum(later, (paid_after[again] * rng.uniform(.3, .9, len(again))))
    later = np.maximum(later, 60).astype(np.int64).astype("m8[s]")
    dup["submitted"] = dup["submitted"].to_numpy() + later
    dup["message"] = "Following up on my earlier request."
    out = pd.concat([out, dup], ignore_index=True)
    order = np.argsort(out["submitted"].to_numpy(), kind="stable")
    return out.iloc[order].reset_index(drop=True)


def _scuff(rng: np.random.Generator, values: pd.Series, share: float) -> pd.Series:
    """Mistyped categories as people type them: odd case and stray spaces."""
    values = values.copy()
    hit = np.flatnonzero((rng.random(len(values)) < share) & (values != "").to_numpy())
    how = rng.integers(0, 4, len(hit))
    picked = values.iloc[hit].astype(str)
    variants = [picked.str.upper(), picked.str.lower(), " " + picked, picked + "  "]
    values.iloc[hit] = np.select([how == i for i in range(4)], [v.to_numpy() for v in variants])
    return values


def _payment_attempts(rng: np.random.Generator, people: pd.DataFrame, customers: pd.DataFrame,
                      periods: pd.DataFrame) -> pd.DataFrame:
    """Every charge attempt: first payments, renewals, retries, final declines, refunds."""
    cust = periods["customer"].to_numpy()
    k = periods["k"].to_numpy()
    plan = customers["plan"].to_numpy()[cust]
    setup = customers["setup"].to_numpy()[cust]
    first = k == 0
    amount = PLAN_CENTS[plan] + np.where(first & (setup == 0), SETUP_FEE_CENTS, 0)
    label = np.array(PLAN_NAMES, dtype=object)[plan]
    description = np.where(first & (setup == 0), label + " plan: first month + setup fee",
                           label + " plan: monthly subscription")
    rows = [pd.DataFrame({"customer": cust, "created": periods["start"].to_numpy(),
                          "amount": amount, "description": description, "status": "succeeded"})]

    separate = np.flatnonzero(customers["setup"].to_numpy() == 1)
    rows.append(pd.DataFrame({
        "customer": separate,
        "created": customers["first_pay"].to_numpy()[separate] + np.timedelta64(150, "s"),
        "amount": SETUP_FEE_CENTS, "description": "One-time setup fee", "status": "succeeded"}))

    # A declined card before a payment that went through: another card on sign-up, the
    # automatic retry three days later on renewals.
    declined = np.flatnonzero(rng.random(len(cust)) < np.where(first, .04, .05))
    back = np.where(first[declined], rng.integers(120, 1800, len(declined)), 3 * 86400)
    rows.append(pd.DataFrame({
        "customer": cust[declined],
        "created": periods["start"].to_numpy()[declined] - back.astype("m8[s]"),
        "amount": amount[declined], "description": description[declined], "status": "failed"}))

    # Involuntary churn: the renewal after the last paid month is declined and never recovers.
    churned = customers["churned"].to_numpy()
    lost = np.flatnonzero(churned & (rng.random(len(customers)) < .35))
    tries = rng.integers(1, 4, len(lost))
    lost_rep = np.repeat(lost, tries)
    nth = np.arange(len(lost_rep)) - np.repeat(np.cumsum(tries) - tries, tries)
    when = customers["churn_at"].to_numpy()[lost_rep] + (nth * 3 * 86400).astype("m8[s]")
    lost_plan = customers["plan"].to_numpy()[lost_rep]
    keep = when <= SNAPSHOT_AT
    rows.append(pd.DataFrame({
        "customer": lost_rep[keep], "created": when[keep],
        "amount": PLAN_CENTS[lost_plan[keep]],
        "description": (np.array(PLAN_NAMES, dtype=object)[lost_plan[keep]]
                        + " plan: monthly subscription"),
        "status": "failed"}))

    payments = pd.concat(rows, ignore_index=True)
    payments["person"] = customers["person"].to_numpy()[payments["customer"].to_numpy()]

    # Prospects who tried to pay and gave up after a decline: in Stripe, never customers.
    never = np.flatnonzero(~people["converted"].to_numpy()
                           & (rng.random(len(people)) < .015))
    tried = people["submitted"].to_numpy()[never] + rng.integers(
        600, 20 * 86400, len(never)).astype("m8[s]")
    tried_plan = people["plan"].to_numpy()[never]
    payments = pd.concat([payments, pd.DataFrame({
        "customer": -1, "person": never, "created": tried,
        "amount": PLAN_CENTS[tried_plan] + SETUP_FEE_CENTS,
        "description": (np.array(PLAN_NAMES, dtype=object)[tried_plan]
                        + " plan: first month + setup fee"),
        "status": "failed"})], ignore_index=True)
    payments = payments[payments["created"] <= SNAPSHOT_AT]
    payments = payments.sort_values(["created", "person"], kind="stable").reset_index(drop=True)

    n = len(payments)
    ok = (payments["status"] == "succeeded").to_numpy()
    amount = payments["amount"].to_numpy()
    refund_kind = np.where(ok, rng.choice(3, n, p=[.97, .015, .015]), 0)  # none | full | partial
    partial = np.where(amount > SETUP_FEE_CENTS + 10000, SETUP_FEE_CENTS, amount // 2)
    payments["amount_refunded"] = np.select([refund_kind == 1, refund_kind == 2],
                                            [amount, partial], 0)
    payments["refunded_after"] = rng.integers(86400, 14 * 86400, n).astype("m8[s]")
    # A dispute shows on the charge in the API dump; in the event log it arrives only as a
    # dispute object (charge.dispute.created). Half of them in each, at least one apiece.
    disputed = np.zeros(n, dtype=bool)
    logged = (payments["created"] >= EVENT_LOG_FROM).to_numpy()
    per_file = max(1, int(round(len(people) / BASE_LEADS)))
    for in_log in (False, True):
        candidates = np.flatnonzero(ok & (refund_kind == 0) & (logged == in_log))
        picked = rng.choice(candidates, min(per_file, len(candidates)), replace=False)
        disputed[picked] = True
    payments["disputed"] = disputed
    payments["decline"] = np.where(ok, -1, rng.choice(len(DECLINES), n, p=[.5, .3, .12, .08]))
    return payments


# -- leads -----------------------------------------------------------------------------------


def _write_leads(world: World, folder: Path, tag: str) -> list[WrittenFile]:
    leads = world.leads
    stamps = pd.Series(leads["submitted"].to_numpy()).dt
    quarter = stamps.quarter.to_numpy()
    text = leads.drop(columns="submitted")
    text.insert(0, "submitted_at", stamps.strftime("%Y-%m-%d %H:%M:%S").to_numpy())
    out = []
    for q in range(1, 5):
        part = text[quarter == q]
        path = folder / f"webform_2025-Q{q}_{tag}.csv"
        part.to_csv(path, index=False, columns=list(LEAD_HEADER), lineterminator="\n")
        out.append(WrittenFile("leads", path, len(part)))
    recent = _recent_leads(world)
    path = folder / f"webform_2026-01_{tag}.csv"
    recent.to_csv(path, index=False, columns=list(LEAD_HEADER), lineterminator="\n")
    out.append(WrittenFile("leads", path, len(recent)))
    return out


def _recent_leads(world: World) -> pd.DataFrame:
    """Leads of the four weeks before the export cut: nobody has decided on them yet.

    Drawn from their own generator so that the year's exports stay the same whatever this
    adds; whatever these prospects buy falls after the cut, so they are the open leads a
    sales team would want ranked.
    """
    rng = np.random.default_rng([int(world.rng.bit_generator.seed_seq.entropy), 2026])
    n = max(int(round(len(world.people) * RECENT_LEAD_DAYS / LEAD_DAYS)), 20)
    people = _people(rng, n)
    offsets = rng.integers(60, RECENT_LEAD_DAYS * 86400, n).astype("m8[s]")
    people["submitted"] = np.sort(SNAPSHOT_AT - offsets)
    people["email"] = "new." + people["email"].astype(str)
    nobody = pd.DataFrame({"person": pd.Series([], dtype=np.int64),
                           "first_pay": pd.Series([], dtype="datetime64[s]")})
    leads = _lead_export(rng, people, nobody)
    leads = leads[leads["submitted"] <= SNAPSHOT_AT]
    text = leads.drop(columns="submitted")
    text.insert(0, "submitted_at", pd.Series(leads["submitted"].to_numpy()).dt.strftime(
        "%Y-%m-%d %H:%M:%S").to_numpy())
    return text


# -- payments --------------------------------------------------------------------------------


def _stripe_ids(rng: np.random.Generator, prefix: str, n: int, length: int = 24) -> list[str]:
    alphabet = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                             dtype=np.uint8)
    codes = np.ascontiguousarray(alphabet[rng.integers(0, 62, size=(n, length))])
    return [prefix + b.decode() for b in codes.view(f"S{length}").ravel()]


@dataclass(frozen=True)
class _Payer:
    customer: str
    email: str
    name: str
    method: str
    card: dict


def _payers(rng: np.random.Generator, people: pd.DataFrame,
            persons: np.ndarray) -> dict[int, _Payer]:
    """A Stripe customer and card per prospect who ever tried to pay."""
    n = len(persons)
    cus = _stripe_ids(rng, "cus_", n, 14)
    pms = _stripe_ids(rng, "pm_", n)
    brand = rng.choice(len(CARD_BRANDS), n, p=[.55, .3, .1, .05])
    last4 = rng.integers(0, 10000, n)
    exp_m, exp_y = rng.integers(1, 13, n), rng.integers(2026, 2031, n)
    emails = people["email"].to_numpy()
    names = people["name"].to_numpy()
    return {
        int(p): _Payer(cus[i], emails[p], names[p], pms[i], {
            "brand": CARD_BRANDS[brand[i]], "country": "US", "exp_month": int(exp_m[i]),
            "exp_year": int(exp_y[i]), "funding": "credit", "last4": f"{last4[i]:04d}"})
        for i, p in enumerate(persons)
    }


def _write_payments(world: World, folder: Path, tag: str) -> list[WrittenFile]:
    """Objects created before October as one JSON array (an API list dump), the rest as the
    webhook event log (JSON Lines), where a refund or dispute arrives as a later event.

    Both files are streamed: the array as objects are made, the event log through a heap
    that holds only events not yet due, so memory stays flat at any scale.
    """
    rng, pay = world.rng, world.payments
    n = len(pay)
    payers = _payers(rng, world.people, np.unique(pay["person"].to_numpy()))
    ids = {prefix: _stripe_ids(rng, prefix, n) for prefix in ("ch_", "pi_", "txn_")}
    event_ids = iter(_stripe_ids(rng, "evt_", 4 * n + len(payers)))
    dispute_ids = iter(_stripe_ids(rng, "dp_", int(pay["disputed"].sum())))
    created = pay["created"].to_numpy().astype("M8[s]").astype(np.int64)
    later = created + pay["refunded_after"].to_numpy().astype("m8[s]").astype(np.int64)
    log_from, cut = _unix(EVENT_LOG_FROM), _unix(SNAPSHOT_AT)
    # A new customer's customer.created event precedes its first payment by this much.
    lead_time = 5

    array_path = folder / f"stripe_charges_2025-01_2025-09_{tag}.json"
    events_path = folder / f"stripe_events_2025-10_2026-01_{tag}.jsonl"
    pending: list[tuple[int, int, str]] = []  # (created, sequence, JSON line) not yet written
    listed = logged = 0
    known: set[str] = set()

    def emit(kind: str, at: int, obj: dict, previous: dict | None = None) -> None:
        data: dict = {"object": obj}
        if previous:
            data["previous_attributes"] = previous
        event = {"id": next(event_ids), "object": "event", "api_version": "2024-06-20",
                 "created": int(at), "data": data, "livemode": True, "pending_webhooks": 0,
                 "request": {"id": None, "idempotency_key": None}, "type": kind}
        heapq.heappush(pending, (int(at), next(sequence), json.dumps(event)))

    sequence = iter(range(1 << 62))
    with array_path.open("w", encoding="utf-8") as array, \
            events_path.open("w", encoding="utf-8") as log:
        array.write("[")
        for i, row in enumerate(pay.itertuples(index=False)):
            payer = payers[int(row.person)]
            intent, charge = _intent_and_charge(row, payer, ids["pi_"][i], ids["ch_"][i],
                                                ids["txn_"][i], int(created[i]))
            if created[i] < log_from:
                for obj in (intent, charge):
                    array.write(("\n" if not listed else ",\n") + json.dumps(obj))
                    listed += 1
                known.add(payer.customer)
                continue
            # Everything still pending that is due before this attempt can be written.
            while pending and pending[0][0] < created[i] - lead_time:
                log.write(heapq.heappop(pending)[2] + "\n")
                logged += 1
            if payer.customer not in known:
                known.add(payer.customer)
                at = int(created[i]) - lead_time
                emit("customer.created", at, {
                    "id": payer.customer, "object": "customer", "created": at,
                    "email": payer.email, "name": payer.name, "livemode": True,
                    "metadata": {}})
            emit("payment_intent." + ("succeeded" if intent["status"] == "succeeded"
                                      else "payment_failed"), created[i], intent)
            if charge["amount_refunded"] or charge["disputed"]:
                before = {**charge, "amount_refunded": 0, "refunded": False, "disputed": False,
                          "refunds": {**charge["refunds"], "total_count": 0}}
                emit("charge.succeeded", created[i], before)
                if charge["amount_refunded"] and later[i] <= cut:
                    emit("charge.refunded", later[i], charge,
                         {"amount_refunded": 0, "refunded": False})
            else:
                emit(f"charge.{charge['status']}", created[i], charge)
            if charge["disputed"]:
                emit("charge.dispute.created", later[i], {
                    "id": next(dispute_ids), "object": "dispute", "amount": charge["amount"],
                    "charge": charge["id"], "created": int(later[i]), "currency": "usd",
                    "payment_intent": intent["id"], "reason": "fraudulent",
                    "status": "needs_response", "livemode": True})
        array.write("\n]\n")
        while pending:
            log.write(heapq.heappop(pending)[2] + "\n")
            logged += 1
    return [WrittenFile("payments", array_path, listed),
            WrittenFile("payments", events_path, logged)]


def _intent_and_charge(row, payer: _Payer, intent_id: str, charge_id: str, txn_id: str,
                       created: int) -> tuple[dict, dict]:
    """One attempt as Stripe shows it: the payment intent and its charge."""
    ok = row.status == "succeeded"
    decline = None if ok else DECLINES[int(row.decline)]
    amount, refunded = int(row.amount), int(row.amount_refunded)
    charge = {
        "id": charge_id, "object": "charge", "amount": amount,
        "amount_captured": amount if ok else 0, "amount_refunded": refunded,
        "balance_transaction": txn_id if ok else None,
        "billing_details": {
            "address": {"city": None, "country": "US", "line1": None, "line2": None,
                        "postal_code": None, "state": None},
            "email": payer.email, "name": payer.name, "phone": None},
        "captured": ok, "created": created, "currency": "usd",
        "customer": payer.customer, "description": row.description,
        "disputed": bool(row.disputed),
        "failure_code": decline[0] if decline else None,
        "failure_message": decline[1] if decline else None,
        "livemode": True, "metadata": {},
        "outcome": {
            "network_status": "approved_by_network" if ok else "declined_by_network",
            "reason": decline[2] if decline else None, "risk_level": "normal",
            "seller_message": "Payment complete." if ok else
            "The bank did not return any further details with this decline.",
            "type": "authorized" if ok else "issuer_declined"},
        "paid": ok, "payment_intent": intent_id, "payment_method": payer.method,
        "payment_method_details": {"card": payer.card, "type": "card"},
        "receipt_email": payer.email if ok else None,
        "refunded": ok and refunded == amount,
        "refunds": {"object": "list", "data": [], "has_more": False,
                    "total_count": int(refunded > 0),
                    "url": f"/v1/charges/{charge_id}/refunds"},
        "statement_descriptor": None, "status": row.status,
    }
    intent = {
        "id": intent_id, "object": "payment_intent", "amount": amount,
        "amount_capturable": 0, "amount_received": amount if ok else 0,
        "capture_method": "automatic", "created": created, "currency": "usd",
        "customer": payer.customer, "description": row.description,
        "last_payment_error": None if ok else {
            "charge": charge_id, "code": decline[0], "decline_code": decline[2],
            "message": decline[1], "type": "card_error"},
        "latest_charge": charge_id, "livemode": True, "metadata": {},
        "payment_method": payer.method if ok else None, "payment_method_types": ["card"],
        "receipt_email": payer.email,
        "status": "succeeded" if ok else "requires_payment_method",
    }
    return intent, charge


def _unix(t: np.datetime64) -> int:
    return int(t.astype("M8[s]").astype(np.int64))


# -- invoices --------------------------------------------------------------------------------


def _invoice_table(world: World) -> pa.Table:
    """Add-on invoice lines: a customer buys less often in the months before leaving."""
    rng, cust, per = world.rng, world.customers, world.periods
    c = per["customer"].to_numpy()
    start = per["start"].to_numpy().astype("M8[s]")
    length = np.maximum((per["end"].to_numpy() - start).astype("m8[s]").astype(np.int64), 1)
    left = cust["paid_months"].to_numpy()[c] - 1 - per["k"].to_numpy()
    fading = np.select([left == 0, left == 1], [.25, .55], 1.0)
    rate = (1.8 * np.exp(.45 * cust["engagement"].to_numpy()[c])
            * (1 + .25 * cust["size"].to_numpy()[c]) * fading * length / (30 * 86400))
    per_invoice = np.repeat(np.arange(len(c)), rng.poisson(rate))
    n_inv = len(per_invoice)
    offset = (rng.random(n_inv) * length[per_invoice]).astype(np.int64)
    day = (start[per_invoice] + offset.astype("m8[s]")).astype("M8[D]")
    # Invoices are raised in office hours.
    at = day.astype("M8[s]") + rng.integers(8 * 3600, 18 * 3600, n_inv).astype("m8[s]")
    customer = c[per_invoice]

    # A few invoices are cancelled days later by a "C" invoice that negates their lines.
    cancelled = np.flatnonzero(rng.random(n_inv) < .015)
    cancel_at = at[cancelled] + (rng.integers(1, 10, len(cancelled)) * 86400
                                 + rng.integers(0, 3600, len(cancelled))).astype("m8[s]")
    keep = cancel_at <= SNAPSHOT_AT
    cancelled, cancel_at = cancelled[keep], cancel_at[keep]
    all_at = np.concatenate([at, cancel_at])
    all_customer = np.concatenate([customer, customer[cancelled]])
    is_cancel = np.r_[np.zeros(n_inv, bool), np.ones(len(cancelled), bool)]
    anonymous = rng.random(len(all_at)) < .005  # keyed in by hand, no customer attached

    n_lines = 1 + rng.poisson(1.2, n_inv)
    line_invoice = np.repeat(np.arange(n_inv), n_lines)
    weights = np.array([a[4] for a in ADDONS])
    product = rng.choice(len(ADDONS), len(line_invoice), p=weights / weights.sum())
    # An invoice lists each add-on once, but now and then a line is keyed in twice (an exact
    # duplicate, as in real exports).
    _, first_of_pair = np.unique(line_invoice * len(ADDONS) + product, return_index=True)
    once = np.zeros(len(product), bool)
    once[first_of_pair] = True
    qty = 1 + rng.poisson(np.array([a[3] for a in ADDONS])[product])
    copies = np.where(once, 1 + (rng.random(len(product)) < .004), 0)
    line_invoice, product, qty = (np.repeat(a, copies) for a in (line_invoice, product, qty))
    n_lines = np.bincount(line_invoice, minlength=n_inv)
    # The cancellation repeats the lines of the invoice it cancels, negated.
    first_line = np.cumsum(n_lines) - n_lines
    cancel_lines = np.concatenate([np.arange(first_line[i], first_line[i] + n_lines[i])
                                   for i in cancelled]) if len(cancelled) else np.array([], int)
    line_invoice = np.concatenate([line_invoice, np.repeat(n_inv + np.arange(len(cancelled)),
                                                           n_lines[cancelled])])
    product = np.concatenate([product, product[cancel_lines]])
    qty = np.concatenate([qty, -qty[cancel_lines]])

    order = np.lexsort((np.arange(len(all_at)), all_at))  # invoice numbers follow time
    number = np.empty(len(all_at), np.int64)
    number[order] = 600001 + np.arange(len(all_at))
    line_order = np.lexsort((np.arange(len(line_invoice)), number[line_invoice]))
    line_invoice, product, qty = line_invoice[line_order], product[line_order], qty[line_order]

    digits = pc.cast(pa.array(number), pa.string())
    invoice_no = pc.if_else(pa.array(is_cancel), pc.binary_join_element_wise("C", digits, ""),
                            digits)
    when = pc.cast(pa.array(all_at.astype("M8[s]"), pa.timestamp("s")), pa.string())
    ids = pc.binary_join_element_wise(
        pc.cast(pa.array(cust["customer_id"].to_numpy()), pa.string()), ".0", "")
    customer_id = pc.if_else(pa.array(anonymous), pa.scalar(None, pa.string()),
                             ids.take(pa.array(all_customer)))
    country = pa.array([name for name, _ in COUNTRIES]).take(
        pa.array(cust["country"].to_numpy()[all_customer]))
    # Dictionary columns: each line points at its invoice's (or product's) text, which the
    # CSV writer expands batch by batch instead of materialising millions of strings here.
    lines = pa.array(line_invoice)
    prod = pa.array(product)

    def per_line(values: pa.Array, index: pa.Array) -> pa.DictionaryArray:
        return pa.DictionaryArray.from_arrays(index, values)

    return pa.table({
        "InvoiceNo": per_line(invoice_no, lines),
        "StockCode": per_line(pa.array([a[0] for a in ADDONS]), prod),
        "Description": per_line(pa.array([a[1] for a in ADDONS]), prod),
        "Quantity": pa.array(qty, pa.int64()),
        "InvoiceDate": per_line(when, lines),
        "UnitPrice": per_line(pa.array([a[2] for a in ADDONS]), prod),
        "CustomerID": per_line(customer_id, lines),
        "Country": per_line(country, lines),
    })


def _write_invoices(world: World, folder: Path, tag: str, compress: bool) -> WrittenFile:
    table = _invoice_table(world)
    path = folder / f"invoices_2025_{tag}.csv{'.gz' if compress else ''}"
    # Unquoted like the UCI file: no add-on description holds a comma or a quote.
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    # Arrow's gzip stream writes no timestamp in its header, so the bytes are reproducible.
    header = (",".join(INVOICE_HEADER) + "\n").encode()
    if not compress:
        with pa.OSFile(str(path), "wb") as sink:
            sink.write(header)
            pacsv.write_csv(table, sink, options)
    else:
        # No name or time in the gzip header keeps the bytes reproducible; level 1 writes
        # large benchmark files several times faster for a few per cent more bytes.
        with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                   mtime=0, compresslevel=1) as sink:
            sink.write(header)
            pacsv.write_csv(table, sink, options)
    return WrittenFile("invoices", path, table.num_rows)


# -- customers -------------------------------------------------------------------------------


def _write_customers(world: World, folder: Path, tag: str) -> WrittenFile:
    cust, people = world.customers, world.people
    person = cust["person"].to_numpy()
    yes_no = np.array(["no", "yes"], dtype=object)
    snapshot = pd.DataFrame({
        "customer_id": cust["customer_id"].astype(str),
        "email": people["email"].to_numpy()[person],
        "company": people["company"].to_numpy()[person],
        "business_type": np.array(BUSINESS_TYPES, dtype=object)[people["btype"].to_numpy()[person]],
        "business_size": np.array(BUSINESS_SIZES, dtype=object)[cust["size"].to_numpy()],
        "plan": np.array(PLAN_NAMES, dtype=object)[cust["plan"].to_numpy()],
        "signup_date": pd.Series(cust["first_pay"].to_numpy()).dt.strftime("%Y-%m-%d"),
        "snapshot_date": pd.Series(cust["snapshot"].to_numpy()).dt.strftime("%Y-%m-%d"),
        "tenure_months": cust["periods"],
        "monthly_fee": PLAN_CENTS[cust["plan"].to_numpy()] // 100,
        "seats": cust["seats"],
        "logins_30d": cust["logins"],
        "active_users_30d": cust["active_users"],
        "support_tickets_90d": cust["tickets"],
        "days_since_last_login": cust["last_login"],
        "auto_renew": yes_no[cust["auto_renew"].to_numpy().astype(int)],
        "churned": yes_no[cust["churned"].to_numpy().astype(int)],
    })
    path = folder / f"accounts_snapshot_2026-01-31_{tag}.csv"
    snapshot.to_csv(path, index=False, columns=list(CUSTOMER_HEADER), lineterminator="\n")
    return WrittenFile("customers", path, len(snapshot))
