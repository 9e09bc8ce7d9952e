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
    realised_performance_path,
    shadow_evidence_path,
)
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
    categories = {c: sorted(str(v) for v in frame[c].dropna().unique())
                  for c in categorical if c in frame.columns}
    return OpenLeads(frame, text.to_numpy(dtype=object), [c for c in columns
                                                           if c in frame.columns], categories)


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
            mask &= (leads.frame[column] == value).to_numpy(dtype=bool, na_value=False)
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


def performance_svg(points: list[tuple[str, float, float | None]], *, width: int = 560,
                    height: int = 200) -> str:
    """Realised ROC-AUC per served version in the order served (bars), with the held-out
    ROC-AUC the version was promoted on (a dot), as inline SVG."""
    if not points:
        return ""
    pad_l, pad_b, pad_t = 40, 28, 12
    plot_w, plot_h = width - pad_l - 8, height - pad_b - pad_t
    slot = plot_w / len(points)
    lo = 0.5

    def y(v: float) -> float:
        return pad_t + plot_h * (1 - (min(max(v, lo), 1.0) - lo) / (1 - lo))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="100%" role="img" aria-labelledby="perf-title" class="plot">',
             '<title id="perf-title">Realised ROC-AUC per served version, with the held-out '
             'ROC-AUC it was promoted on</title>']
    for tick in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
        parts.append(f'<line x1="{pad_l}" x2="{width - 8}" y1="{y(tick):.1f}" '
                     f'y2="{y(tick):.1f}" class="grid"/>'
                     f'<text x="{pad_l - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" '
                     f'class="tick">{tick:.1f}</text>')
    for i, (label, realised, held_out) in enumerate(points):
        x = pad_l + i * slot + slot * 0.2
        w = slot * 0.6
        if realised is not None and math.isfinite(realised):
            top = y(realised)
            parts.append(f'<rect x="{x:.1f}" y="{top:.1f}" width="{w:.1f}" '
                         f'height="{pad_t + plot_h - top:.1f}" class="bar">'
                         f'<title>{label}: realised ROC-AUC {realised:.3f}</title></rect>')
        if held_out is not None and math.isfinite(held_out):
            parts.append(f'<circle cx="{x + w / 2:.1f}" cy="{y(held_out):.1f}" r="4" '
                         f'class="dot"><title>{label}: held-out ROC-AUC {held_out:.3f}'
                         f'</title></circle>')
        parts.append(f'<text x="{x + w / 2:.1f}" y="{height - 10}" text-anchor="middle" '
                     f'class="tick">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)
