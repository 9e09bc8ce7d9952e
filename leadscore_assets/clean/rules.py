"""Named cleaning rules and what they leave behind: clean rows, quarantine, removals.

Every raw row ends in exactly one place: the clean table, the quarantine (it broke a rule;
the rule, the field and the offending value are kept with the raw row), or removed by a
named rule that loses no information (an exact duplicate, a superseded version). A rule
only sees the rows no earlier rule has taken, so each row is counted once, under the first
rule it breaks, and ``rows_in = clean + quarantined + removed`` holds by construction.
No Dagster imports here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

LINEAGE = ["_source_file", "_row_number", "_ingested_at"]
# A record the reader could not split: more or fewer fields than the header, a NUL byte, a
# quote never closed (see ingest/csvfiles.py).
MALFORMED_RULES = ("ragged_row", "nul_byte", "unreadable_row")
QUARANTINE_COLUMNS = ["_source_file", "_row_number", "rule", "field", "value", "record"]
QUARANTINE_SQL = {
    "_source_file": "VARCHAR", "_row_number": "BIGINT", "rule": "VARCHAR",
    "field": "VARCHAR", "value": "VARCHAR", "record": "JSON",
}


@dataclass
class CleanResult:
    """Outcome of cleaning one source: the three places a raw row can go, counted by rule."""

    rows_in: int
    clean: pd.DataFrame
    quarantine: pd.DataFrame
    removed: dict[str, int] = field(default_factory=dict)
    repaired: dict[str, int] = field(default_factory=dict)  # values fixed in kept rows
    applied: dict[str, int] = field(default_factory=dict)  # every rule, in order, with 0s

    @property
    def quarantined(self) -> dict[str, int]:
        if self.quarantine.empty:
            return {}
        return {str(k): int(v) for k, v in self.quarantine["rule"].value_counts().items()}

    @property
    def rule_counts(self) -> dict[str, int]:
        """Rows taken out per rule, quarantined or removed; rules that took none count 0,
        so every materialisation reports the same rule names."""
        return {**self.applied, **self.quarantined, **self.removed}

    @property
    def accounted(self) -> int:
        return len(self.clean) + len(self.quarantine) + sum(self.removed.values())


class RuleBook:
    """Applies rules in order to a raw frame (RangeIndex), remembering who took which row."""

    def __init__(self, raw: pd.DataFrame, record_columns: Sequence[str] | None = None,
                 record_json: pd.Series | None = None):
        self.raw = raw
        self.alive = np.ones(len(raw), dtype=bool)
        self._record_columns = list(record_columns or [])
        self._record_json = record_json
        self._parts: list[tuple[np.ndarray, str, str, pd.Series, pd.Series | None]] = []
        self.removed: dict[str, int] = {}
        self.applied: dict[str, int] = {}

    def _take(self, mask: pd.Series | np.ndarray) -> np.ndarray:
        flags = pd.Series(mask)
        if flags.dtype == object:
            flags = flags.infer_objects()
        hit = flags.fillna(False).to_numpy(dtype=bool) & self.alive
        self.alive &= ~hit
        return hit

    def quarantine(self, rule: str, field_name: str, mask, values: pd.Series | None = None,
                   records: pd.Series | None = None) -> int:
        """Send the still-alive rows of ``mask`` to quarantine under ``rule``
        (``records``: what to keep as each row's record instead of its raw columns)."""
        hit = self._take(mask)
        self.applied[rule] = self.applied.get(rule, 0) + int(hit.sum())
        if hit.any():
            source = values if values is not None else self.raw.get(field_name)
            if source is None:
                source = pd.Series(pd.NA, index=self.raw.index)
            # the rows taken, then as text: a whole column as Python strings would be the
            # largest allocation of a multi-million-line clean
            self._parts.append((np.flatnonzero(hit), rule, field_name,
                                pd.Series(source).iloc[hit].astype("string"),
                                None if records is None else records.iloc[hit]))
        return int(hit.sum())

    def quarantine_malformed(self) -> int:
        """Rows the reader could not split into the header's fields (``_malformed``): ragged
        rows, NUL bytes. Their value is the reader's reason (with the line), their record
        the fields as read. Runs first: such a row has no values for other rules to see."""
        if "_malformed" not in self.raw.columns:
            return 0
        text = self.raw["_malformed"]
        present = text.notna().to_numpy(dtype=bool)
        taken = 0
        for rule in MALFORMED_RULES:
            self.applied.setdefault(rule, 0)
        if not present.any():
            return 0
        details = pd.Series([None] * len(text), index=self.raw.index, dtype=object)
        details[present] = [json.loads(t) for t in text[present]]
        keys = pd.Series([(d["rule"], d.get("field") or "(row)") if d else None
                          for d in details], index=self.raw.index, dtype=object)
        reasons = pd.Series([d["reason"].replace("\x00", "\\x00") if d else None
                             for d in details], index=self.raw.index, dtype="string")
        for rule, field_name in sorted(set(keys[present])):
            mask = (keys == (rule, field_name)).to_numpy(dtype=bool) & present
            taken += self.quarantine(rule, field_name, mask, reasons,
                                     records=text.astype("string"))
        return taken

    def remove(self, rule: str, mask) -> int:
        """Drop the still-alive rows of ``mask``, counting them under ``rule``."""
        hit = self._take(mask)
        self.applied[rule] = self.applied.get(rule, 0) + int(hit.sum())
        if hit.any() or rule not in self.removed:
            self.removed[rule] = self.removed.get(rule, 0) + int(hit.sum())
        return int(hit.sum())

    def quarantine_frame(self) -> pd.DataFrame:
        if not self._parts:
            return empty_quarantine()
        frames = []
        for positions, rule, field_name, values, records in self._parts:
            rows = self.raw.iloc[positions]
            frames.append(pd.DataFrame({
                "_source_file": rows["_source_file"].astype("string").to_numpy(),
                "_row_number": rows["_row_number"].astype("int64").to_numpy(),
                "rule": rule,
                "field": field_name,
                "value": values.to_numpy(),
                "record": (self._records(positions) if records is None
                           else records.to_numpy()),
            }))
        out = pd.concat(frames, ignore_index=True)
        return out.sort_values(["_source_file", "_row_number"], kind="stable",
                               ignore_index=True)

    def _records(self, positions: np.ndarray) -> list[str]:
        if self._record_json is not None:
            return self._record_json.iloc[positions].astype(str).tolist()
        rows = self.raw.iloc[positions][self._record_columns]
        return [json.dumps(r, ensure_ascii=False, default=str)
                for r in rows.astype(object).where(rows.notna(), None).to_dict("records")]


def empty_quarantine() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="int64" if c == "_row_number" else "string")
                         for c in QUARANTINE_COLUMNS})


def blank(values: pd.Series) -> pd.Series:
    """True where a text value is missing or only whitespace."""
    s = values.astype("string[pyarrow]")
    return (s.isna() | (s.str.strip() == "")).fillna(True).astype(bool)


def parse_timestamps(values: pd.Series, formats: Sequence[str]) -> pd.Series:
    """Parse text with the first format that fits each value (NaT where none does).

    Trying a short list of exact formats is much faster than pandas' per-value inference
    and never guesses day/month order.
    """
    text = values.astype("string[pyarrow]").str.strip()
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    for fmt in formats:
        todo = out.isna() & text.notna()
        if not todo.any():
            break
        out[todo] = pd.to_datetime(text[todo], format=fmt, errors="coerce")
    return out


def lineage_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in the order they were landed: ingestion time, file, position in the file."""
    keys = [c for c in ("_ingested_at", "_source_file", "_row_number") if c in frame.columns]
    if not keys:
        return frame.reset_index(drop=True)
    if ("_row_number" in keys and frame["_row_number"].is_monotonic_increasing
            and all(frame[k].nunique(dropna=False) <= 1 for k in keys if k != "_row_number")):
        return frame.reset_index(drop=True)  # one file, already in order
    # lexsort on integer codes: much faster than sorting a frame by a text column
    codes = [pd.factorize(frame[c], sort=True)[0] for c in reversed(keys)]
    order = np.lexsort(codes)
    if (order == np.arange(len(order))).all():  # landed in order: no copy of every column
        return frame.reset_index(drop=True)
    return frame.iloc[order].reset_index(drop=True)


def by_latest(frame: pd.DataFrame, key: str, order: Sequence[str]) -> pd.Series:
    """True for the rows that are not the latest version of their ``key`` (sorted by ``order``)."""
    ranked = frame.sort_values(list(order), kind="stable", na_position="first")
    stale = ranked.duplicated(key, keep="last")
    return stale.reindex(frame.index)
