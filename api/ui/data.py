"""What the pages show, read only from what the API may read: the registry and the files
Dagster publishes (open leads, the customers' churn scores and features, drift and
realised-performance summaries). Never the warehouse.

Each published file is parsed once per version of the file (``PublishedFile``), so a page is
a filter and a slice of what the batch scores ranked, not a scoring run.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from api.snapshot import customer_key
from leadscore_core.published import (
    PublishedFile,
    read_json,
    realised_over_time_path,
    realised_performance_path,
    shadow_evidence_path,
)
from leadscore_core.serving import normalise_category_value
from leadscore_core.shadow import LiveEvidence, evidence_for, read_evidence

PAGE_SIZE = 25
SEARCH_COLUMNS = ("lead_id", "email", "name", "company")


# -- open leads -----------------------------------------------------------------------------


@dataclass
class OpenLeads:
    """The published open leads, ranked as ``scores/leads`` ranked them."""

    frame: pd.DataFrame
    search_text: np.ndarray  # lower-cased id, email, name and company per row
    export_columns: list[str]  # the columns of lead_scores.csv
    categories: dict[str, list[str]] = field(default_factory=dict)  # filterable fields

    def by_id(self, lead_id: str) -> dict[str, Any] | None:
        found = self.frame.index[self.frame["lead_id"] == lead_id]
        if len(found) == 0:
            return None
        return _plain_row(self.frame.loc[found[0]])


def read_open_leads(path: Path, categorical: Iterable[str], export_header: Path | None
                    ) -> OpenLeads:
    frame = pd.read_parquet(path)
    frame["lead_id"] = frame["lead_id"].astype(str)
    parts = [frame[c].astype("string").fillna("").str.lower() for c in SEARCH_COLUMNS
             if c in frame.columns]
    text = parts[0]
    for part in parts[1:]:
        text = text + "\x1f" + part
    columns = _csv_header(export_header) or [c for c in frame.columns]
    categories = {c: spellings(frame[c]) for c in categorical if c in frame.columns}
    return OpenLeads(frame, text.to_numpy(dtype=object), [c for c in columns
                                                           if c in frame.columns], categories)


def spellings(values: pd.Series) -> list[str]:
    """One option per category (``Dental`` and ``dental `` are one, as the model reads
    them): its most common spelling, in alphabetical order."""
    text = values.dropna().astype(str)
    found: dict[str, str] = {}
    for spelling in text.value_counts().index:  # most common first
        found.setdefault(normalise_category_value(spelling), spelling)
    return sorted((v for k, v in found.items() if k is not None), key=str.lower)


def _csv_header(path: Path | None) -> list[str] | None:
    if path is None or not path.exists():
        return None
    with open(path, newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle), None)


@dataclass(frozen=True)
class LeadQuery:
    tier: str = ""
    q: str = ""
    filters: tuple[tuple[str, str], ...] = ()
    page: int = 1


def select_leads(leads: OpenLeads, query: LeadQuery) -> pd.DataFrame:
    """The rows matching the query, in rank order."""
    mask = np.ones(len(leads.frame), dtype=bool)
    if query.tier:
        mask &= (leads.frame["tier"] == query.tier).to_numpy(dtype=bool, na_value=False)
    for column, value in query.filters:
        if column in leads.categories and value:
            wanted = normalise_category_value(value)
            mask &= np.fromiter((normalise_category_value(v) == wanted
                                 for v in leads.frame[column].astype(object)), bool,
                                len(leads.frame))
    needle = query.q.strip().lower()
    if needle:
        mask &= np.fromiter((needle in t for t in leads.search_text), bool,
                            len(leads.search_text))
    return leads.frame if mask.all() else leads.frame[mask]


def page_of(rows: pd.DataFrame, page: int, size: int = PAGE_SIZE
            ) -> tuple[list[dict[str, Any]], int, int]:
    """(rows of the page, the page, the number of pages)."""
    pages = max(1, math.ceil(len(rows) / size))
    page = min(max(1, page), pages)
    part = rows.iloc[(page - 1) * size: page * size]
    return [_plain_row(pd.Series(r)) for r in part.to_dict("records")], page, pages


def _plain_row(row: pd.Series) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
            value = None
        elif isinstance(value, np.generic):
            value = value.item()
        out[str(key)] = value
    return out


def rows_as_csv(rows: pd.DataFrame, columns: list[str]) -> str:
    """The rows in the layout of ``lead_scores.csv`` (ISO dates, empty for missing)."""
    out = rows[columns].copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].dt.strftime("%Y-%m-%dT%H:%M:%S").where(out[col].notna(), "")
    return out.to_csv(index=False, lineterminator="\n")


# -- customers ------------------------------------------------------------------------------


def read_customer_scores(path: Path) -> pd.DataFrame:
    """``scores.customers`` as published: one row per customer (each churn model's
    probability, one risk level by ``leadscore_core.tiers.customer_risk``), the highest
    churn probability first, ids as people type them."""
    frame = pd.read_parquet(path)
    frame["customer_id"] = [customer_key(v) for v in frame["customer_id"]]
    frame = frame[frame["customer_id"].notna()]
    return frame.sort_values(["churn_probability", "customer_id"], ascending=[False, True],
                             ignore_index=True)


# -- models ---------------------------------------------------------------------------------


class ModelOverview:
    """Registry facts per model (versions, metrics, gate decisions), re-read at most every
    ``ttl`` seconds: the registry is a database, a page view need not query it each time."""

    def __init__(self, registry: Any, monitoring_dir: Path, ttl: float = 15.0):
        self.registry = registry
        self.monitoring_dir = Path(monitoring_dir)
        self.ttl = ttl
        self._versions: dict[str, tuple[float, list[Any]]] = {}
        self.realised = PublishedFile(realised_performance_path(monitoring_dir), read_json)
        self.shadow = PublishedFile(shadow_evidence_path(monitoring_dir), read_evidence)
        self.over_time = PublishedFile(realised_over_time_path(monitoring_dir), read_json)
        self._drift: dict[str, PublishedFile] = {}
        self._estimated: dict[str, PublishedFile] = {}

    def versions(self, model: str) -> list[Any]:
        """Every registered version (newest first), or [] when the registry cannot list."""
        project = getattr(self.registry, "registry", None)
        if project is None or not hasattr(project, "versions"):
            return []
        found = self._versions.get(model)
        if found and time.monotonic() - found[0] < self.ttl:
            return found[1]
        try:
            versions = project.versions(model)
        except Exception:
            versions = []
        self._versions[model] = (time.monotonic(), versions)
        return versions

    def drift(self, key: str) -> dict[str, Any] | None:
        """The latest drift summary of a model (``monitoring/<key>_drift``), if any."""
        if key not in self._drift:
            self._drift[key] = PublishedFile(self.monitoring_dir / f"{key}_drift.json",
                                             read_json)
        return self._drift[key].get()

    def estimate(self, key: str) -> dict[str, Any] | None:
        """The latest label-free performance estimate of a model
        (``monitoring/<key>_estimated_performance``), if any."""
        if key not in self._estimated:
            self._estimated[key] = PublishedFile(
                self.monitoring_dir / f"{key}_estimated.json", read_json)
        return self._estimated[key].get()

    def live_evidence(self, key: str, champion: str | None, challenger: str | None
                      ) -> LiveEvidence | None:
        """What shadow scoring saw of this challenger beside this champion, if published."""
        return evidence_for(self.shadow.get() or [], key, champion, challenger)

    def drift_report(self, key: str) -> Path | None:
        path = self.monitoring_dir / f"{key}_drift.html"
        return path if path.is_file() else None

    def windows(self, key: str, registered: str) -> list[dict[str, Any]]:
        """Realised (and estimated) ROC-AUC per window of prediction time, oldest first."""
        rows = self.over_time.get() or []
        return sorted((r for r in rows if r.get("model") in (key, registered)),
                      key=lambda r: str(r.get("window_start")))

    def realised_rows(self, registered: str) -> list[dict[str, Any]]:
        rows = self.realised.get() or []
        return [r for r in rows if r.get("model") in (registered,)]


def when(value: Any) -> str:
    """A time for people: ``2026-01-02 03:04 UTC``."""
    if value is None or value == "":
        return "unknown"
    if isinstance(value, int | float):
        stamp = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
    else:
        try:
            stamp = datetime.fromisoformat(str(value))
        except ValueError:
            return str(value)
        stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    return stamp.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def performance_svg(windows: list[dict[str, Any]], held_out: float | None = None, *,
                    width: int = 560, height: int = 220) -> str:
    """Realised ROC-AUC over calendar time as inline SVG: one point per window of prediction
    time (x: the window's dates), joined by a line; beside each, the confidence-based
    estimate made from the same predictions' probabilities (a hollow point with its
    interval); the held-out ROC-AUC the champion was promoted on as a dotted line."""
    shown = [w for w in windows if _number(w.get("roc_auc")) is not None
             or _number(w.get("estimated_roc_auc")) is not None]
    if not shown:
        return ""
    pad_l, pad_r, pad_b, pad_t = 40, 12, 34, 12
    plot_w, plot_h = width - pad_l - pad_r, height - pad_b - pad_t
    lo = 0.5
    days = [(_day(w["window_start"]), _day(w["window_end"]) + 1) for w in shown]
    first, last = min(d[0] for d in days), max(d[1] for d in days)
    span = max(last - first, 1)

    def x(day: float) -> float:
        return pad_l + plot_w * (day - first) / span

    def y(v: float) -> float:
        return pad_t + plot_h * (1 - (min(max(v, lo), 1.0) - lo) / (1 - lo))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="100%" role="img" aria-labelledby="perf-title" class="plot">',
             '<title id="perf-title">Realised ROC-AUC over time, per window of prediction '
             'time, with the estimate made from the probabilities alone beside it</title>']
    for tick in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
        parts.append(f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{y(tick):.1f}" '
                     f'y2="{y(tick):.1f}" class="grid"/>'
                     f'<text x="{pad_l - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" '
                     f'class="tick">{tick:.1f}</text>')
    if held_out is not None and math.isfinite(held_out):
        parts.append(f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{y(held_out):.1f}" '
                     f'y2="{y(held_out):.1f}" class="held-out"><title>held-out ROC-AUC '
                     f'{held_out:.3f}</title></line>')
    line, points = [], []
    for w, (start, end) in zip(shown, days, strict=True):
        cx = x((start + end) / 2)
        what = (f'{w["window_start"]} to {w["window_end"]}, {w.get("predictions", 0)} '
                f'predictions (version {w.get("versions", "?")})')
        est, low, high = (_number(w.get(k)) for k in ("estimated_roc_auc", "estimated_low",
                                                       "estimated_high"))
        if est is not None:
            ex = cx + 5
            if low is not None and high is not None:
                points.append(f'<line x1="{ex:.1f}" x2="{ex:.1f}" y1="{y(low):.1f}" '
                              f'y2="{y(high):.1f}" class="interval"/>')
            points.append(f'<circle cx="{ex:.1f}" cy="{y(est):.1f}" r="4" class="estimate">'
                         f'<title>{what}: estimated ROC-AUC {est:.3f}'
                         + (f" [{low:.3f}, {high:.3f}]" if low is not None
                            and high is not None else "") + '</title></circle>')
        realised = _number(w.get("roc_auc"))
        if realised is not None:
            line.append(f"{cx:.1f},{y(realised):.1f}")
            points.append(f'<circle cx="{cx:.1f}" cy="{y(realised):.1f}" r="4" '
                          f'class="realised"><title>{what}: realised ROC-AUC {realised:.3f}'
                         f'</title></circle>')
    if len(line) > 1:  # beneath the points
        parts.append(f'<polyline points="{" ".join(line)}" class="realised-line"/>')
    parts += points
    ticks = _date_ticks(first, last)
    for i, (label, day) in enumerate(ticks):  # the end labels stay inside the plot
        anchor = "start" if i == 0 else "end" if i == len(ticks) - 1 else "middle"
        parts.append(f'<text x="{x(day):.1f}" y="{height - 12}" text-anchor="{anchor}" '
                     f'class="tick">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _day(iso: str) -> int:
    """Days since the epoch of an ISO date."""
    return (datetime.fromisoformat(str(iso)[:10]).date() - datetime(1970, 1, 1).date()).days


def _date_ticks(first: int, last: int, most: int = 6) -> list[tuple[str, float]]:
    """Up to ``most`` evenly spaced date labels between two epoch days."""
    from datetime import date, timedelta

    count = min(most, max(2, last - first))
    out = []
    for i in range(count):
        day = first + (last - first) * i / (count - 1)
        stamp = date(1970, 1, 1) + timedelta(days=int(round(day)))
        out.append((stamp.strftime("%d %b %Y") if i in (0, count - 1)
                    else stamp.strftime("%d %b"), day))
    return out
