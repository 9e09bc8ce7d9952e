"""Source profiles: how one company's export maps to a lead or a customer.

A profile is a YAML file. It names the columns that identify a row (id, created time, email,
label) and the feature columns with their kind (categorical, numeric, boolean). A file's
profile is found from its header (``detect`` lists columns that must all be present; the
profile that explains the most columns wins). The shipped profiles live beside this module;
a user adds a profile for a new format by dropping a YAML file into ``data/profiles/`` (or
``LEADSCORE_PROFILES_DIR``), no code needed.

``Profile.type_frame`` turns the text of a raw export into typed columns; it is shared by
cleaning (Dagster) and by serving (the API builds request schemas from the same profile).
No Dagster imports here.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from leadscore_core.times import check_timezone, offset_problems, parse_times
from leadscore_core.vocabulary import FALSE_WORDS, TRUE_WORDS, flags

SHIPPED_DIR = Path(__file__).parent
DEFAULT_TRUE = TRUE_WORDS
DEFAULT_FALSE = FALSE_WORDS
# rule of a feature value the profile cannot read, by the feature's kind
UNREADABLE_RULES = {"numeric": "invalid_number", "boolean": "invalid_flag"}


class ColumnRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    column: str
    lowercase: bool = False
    format: str | None = Field(None, description="strftime format; default: inferred")


class LabelRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    column: str
    true_values: list[str] = Field(default_factory=lambda: list(DEFAULT_TRUE))
    false_values: list[str] = Field(default_factory=lambda: list(DEFAULT_FALSE))


class Features(BaseModel):
    model_config = ConfigDict(extra="forbid")
    categorical: list[str] = Field(default_factory=list)
    numeric: list[str] = Field(default_factory=list)
    boolean: list[str] = Field(default_factory=list)
    rest: Literal["numeric", "categorical", "ignore"] = "ignore"


class Display(BaseModel):
    """How people see a column in reasons and pages (``leadscore_core.reasons``)."""

    model_config = ConfigDict(extra="forbid")
    label: str | None = Field(None, description="default: the column's name as exported")
    unit: str | None = Field(
        None, description="ISO 4217 code for money (USD), time_of_day, or a word (days)")


class Repair(BaseModel):
    """Fill a blank value with ``value`` where the pandas expression ``when`` holds."""

    model_config = ConfigDict(extra="forbid")
    column: str
    value: float | str | bool
    when: str | None = None


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    source: Literal["leads", "customers"]
    description: str = ""
    detect: list[str]
    id: ColumnRef
    created_at: ColumnRef | None = None
    email: str | None = None
    label: LabelRef | None = None
    features: Features = Field(default_factory=Features)
    placeholders: list[str] = Field(default_factory=list)
    personal: list[str] = Field(default_factory=list, description="kept, never a feature")
    text: list[str] = Field(default_factory=list, description="free text, never a feature")
    exclude: list[str] = Field(default_factory=list, description="kept, never a feature")
    actionable: list[str] = Field(
        default_factory=list, description="feature columns a person can change (the API can "
                                          "suggest the one change that helps the score most)")
    optional: list[str] = Field(
        default_factory=list, description="named columns a file may lack (typed as missing); "
                                          "any other named column missing refuses the file")
    repairs: list[Repair] = Field(default_factory=list)
    horizon_days: int | None = Field(
        None, ge=1, description="the score's horizon for this export: leads convert within this "
                                "many days of arriving (the window payments label them in); "
                                "customers' churn label means leaving within this many days "
                                "(default: LEADSCORE_LEAD_WINDOW_DAYS / "
                                "LEADSCORE_CHURN_HORIZON_DAYS)")
    display: dict[str, Display] = Field(default_factory=dict,
                                        description="column -> label and unit for people")
    true_values: list[str] = Field(default_factory=lambda: list(DEFAULT_TRUE))
    false_values: list[str] = Field(default_factory=lambda: list(DEFAULT_FALSE))
    # How the export writes dates and numbers; unset: decided from the evidence in each file.
    date_order: Literal["dmy", "mdy", "ymd"] | None = Field(
        None, description="day-month order of dates written like 01/02/2024")
    decimal: Literal[".", ","] | None = Field(None, description="decimal mark of numbers")
    thousands: Literal[",", ".", " ", "'"] | None = Field(
        None, description="thousands separator of numbers")
    delimiter: Literal[",", ";", "\t", "|", "tab"] | None = Field(
        None, description="field delimiter of the CSV")
    timezone: str | None = Field(
        None, description="IANA time zone of created times written without a UTC offset "
                          "(unset: kept as written, unless other times carry an offset)")
    encoding: str | None = Field(
        None, description="text encoding of the export (unset: decided from its bytes)")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        return value if value is None else check_timezone(value)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                codecs.lookup(value)
            except LookupError as exc:
                raise ValueError(f"unknown text encoding {value!r}") from exc
        return value

    # -- columns ---------------------------------------------------------------------------

    @property
    def identity_columns(self) -> list[str]:
        cols = [self.id.column]
        if self.created_at:
            cols.append(self.created_at.column)
        if self.email:
            cols.append(self.email)
        if self.label:
            cols.append(self.label.column)
        return cols

    def resolve(self, header: Sequence[str]) -> ResolvedProfile:
        """Bind the profile to a concrete header (expands ``features.rest``)."""
        named = set(self.identity_columns) | set(self.personal) | set(self.text)
        named |= set(self.exclude)
        kinds: dict[str, str] = {}
        for kind in ("categorical", "numeric", "boolean"):
            for col in getattr(self.features, kind):
                kinds[col] = kind
        if self.features.rest != "ignore":
            for col in header:
                if col not in named and col not in kinds:
                    kinds[col] = self.features.rest
        return ResolvedProfile(self, kinds)

    def matches(self, header: Sequence[str]) -> bool:
        present = set(header)
        return all(col in present for col in self.detect)

    def missing_columns(self, header: Sequence[str]) -> list[str]:
        present = set(header)
        needed = self.identity_columns + [c for k in ("categorical", "numeric", "boolean")
                                          for c in getattr(self.features, k)]
        return [c for c in needed if c not in present and c not in self.optional]


def as_text(value: object) -> str | None:
    """A JSON value as raw text: strings as they are, null as null, anything else (numbers,
    booleans, lists) as its JSON text (``true``, ``12.5``, ``["a", "b"]``)."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def snake(name: str) -> str:
    """Warehouse column name for an export's column: ``MonthlyCharges`` -> ``monthly_charges``."""
    split = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    out = re.sub(r"[^0-9a-zA-Z]+", "_", split).strip("_").lower()
    if not out:
        return "row_index"
    return f"c_{out}" if out[0].isdigit() else out


@dataclass(frozen=True)
class ResolvedProfile:
    """A profile bound to the columns of its file, with the typed feature schema."""

    profile: Profile
    kinds: dict[str, str]  # original column -> categorical | numeric | boolean

    @cached_property
    def feature_columns(self) -> dict[str, str]:
        """Typed (snake_case) feature name -> kind, in file order."""
        return {snake(c): k for c, k in self.kinds.items()}

    @cached_property
    def original_names(self) -> dict[str, str]:
        """Typed feature name -> the export's column name (for reasons shown to people)."""
        return {snake(c): c for c in self.kinds}

    def type_frame(self, text: pd.DataFrame) -> TypedFrame:
        """Type the text of an export: ids, label, created time, email and features.

        Returns the typed frame (identity columns ``record_id``, ``created_at``, ``email``,
        ``label`` followed by the snake_case features) and, per row, the problems that make it
        unusable (missing id, unreadable label or created time, a time without a UTC offset
        beside times with one: :mod:`leadscore_core.times`). A feature value that cannot be
        read is null in the frame, counted per field and listed in ``unreadable``
        (``invalid_number``, ``invalid_flag``): cleaning quarantines its row, a caller
        scoring one request may go on without it.
        """
        p = self.profile
        n = len(text)
        out = pd.DataFrame(index=text.index)
        problems: list[pd.DataFrame] = []
        unreadable: list[pd.DataFrame] = []
        nulled: dict[str, int] = {}

        def col(name: str) -> pd.Series:
            if name in text.columns:
                return _blank_to_na(text[name], p.placeholders)
            return pd.Series(pd.NA, index=text.index, dtype="string")

        ids = col(p.id.column).str.strip()
        if p.id.lowercase:
            ids = ids.str.lower()
        out["record_id"] = ids
        problems.append(_problem(text.index, ids.isna(), "missing_id", p.id.column, ids))

        if p.created_at:
            raw = col(p.created_at.column)
            ts = parse_times(raw, p.created_at.format)
            out["created_at"] = ts
            unplaced = offset_problems(raw)
            problems.append(_problem(text.index, unplaced.notna(), "ambiguous_timezone",
                                     p.created_at.column, unplaced))
            bad = raw.notna() & ts.isna() & unplaced.isna()
            problems.append(_problem(text.index, bad, "invalid_created_at",
                                     p.created_at.column, raw))
        else:
            out["created_at"] = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")

        out["email"] = col(p.email).str.strip().str.lower() if p.email else pd.Series(
            pd.NA, index=text.index, dtype="string")

        if p.label:
            raw = col(p.label.column)
            lab = _to_bool(raw, p.label.true_values, p.label.false_values)
            out["label"] = lab
            bad = raw.notna() & lab.isna()
            problems.append(_problem(text.index, bad, "invalid_label", p.label.column, raw))
        else:
            out["label"] = pd.Series(pd.NA, index=text.index, dtype="boolean")

        for original, kind in self.kinds.items():
            name = snake(original)
            raw = col(original)
            if kind == "categorical":
                out[name] = normalise_category(raw)
                continue
            if kind == "numeric":
                # canonical text (cleaning rewrote it per its file's decimal mark): a comma
                # here is no thousands separator to drop but a value that does not parse
                typed = pd.to_numeric(raw.str.strip(), errors="coerce").astype("Float64")
            else:
                typed = _to_bool(raw, p.true_values, p.false_values)
            bad = raw.notna() & typed.isna()
            if bad.any():
                nulled[name] = int(bad.sum())
                unreadable.append(_problem(text.index, bad, UNREADABLE_RULES[kind], original,
                                           raw))
            out[name] = typed

        for repair in p.repairs:
            name = snake(repair.column)
            if name not in out:
                continue
            mask = out[name].isna()
            if repair.when:
                mask &= out.eval(_snake_expr(repair.when, self.kinds)).fillna(False).astype(bool)
            out.loc[mask, name] = repair.value
            nulled[f"repaired:{name}"] = int(mask.sum())

        bad_rows = pd.concat(problems, ignore_index=True) if problems else _no_problems()
        bad_values = pd.concat(unreadable, ignore_index=True) if unreadable else (
            _no_problems())
        return TypedFrame(out.reset_index(drop=True) if n else out, bad_rows, nulled,
                          bad_values)


@dataclass
class TypedFrame:
    frame: pd.DataFrame
    problems: pd.DataFrame  # columns: row (index label in the input), rule, field, value
    field_counts: dict[str, int]  # feature -> values made null (or repaired) by typing
    # feature values the profile cannot read (same columns as ``problems``; the field is
    # the export's column name): cleaning quarantines their rows
    unreadable: pd.DataFrame = field(default_factory=lambda: _no_problems())


def normalise_category(values: pd.Series) -> pd.Series:
    """Case and whitespace normalisation: ``' Google '`` and ``'google'`` are one category."""
    return values.str.strip().str.replace(r"\s+", " ", regex=True).str.lower().astype("string")


def _blank_to_na(values: pd.Series, placeholders: Iterable[str]) -> pd.Series:
    s = values.astype("string")
    stripped = s.str.strip()
    blank = stripped.isna() | (stripped == "")
    marks = {v.strip().lower() for v in placeholders}
    if marks:
        blank |= stripped.str.lower().isin(marks).fillna(False)
    return s.mask(blank)


def _to_bool(values: pd.Series, true_values: Iterable[str],
             false_values: Iterable[str]) -> pd.Series:
    return flags(values, true_values, false_values)


def _problem(index: pd.Index, mask: pd.Series, rule: str, column: str,
             values: pd.Series) -> pd.DataFrame:
    mask = mask.fillna(False).to_numpy(bool)
    return pd.DataFrame({
        "row": np.asarray(index)[mask],
        "rule": rule,
        "field": column,
        "value": values[mask].astype("string").to_numpy(),
    })


def _no_problems() -> pd.DataFrame:
    return pd.DataFrame({"row": [], "rule": [], "field": [], "value": []})


def _snake_expr(expr: str, kinds: dict[str, str]) -> str:
    for original in sorted(kinds, key=len, reverse=True):
        expr = expr.replace(original, snake(original))
    return expr


# -- registry --------------------------------------------------------------------------------


def load_profiles(extra_dir: Path | None = None) -> dict[str, Profile]:
    """Shipped profiles, overridden or extended by the YAML files in ``extra_dir``."""
    profiles: dict[str, Profile] = {}
    dirs = [SHIPPED_DIR] + ([extra_dir] if extra_dir and extra_dir.is_dir() else [])
    for directory in dirs:
        for path in sorted(directory.glob("*.y*ml")):
            try:
                profile = Profile.model_validate(yaml.safe_load(path.read_text()))
            except Exception as exc:  # a broken user profile must say which file
                raise ValueError(f"profile {path}: {exc}") from exc
            profiles[profile.name] = profile
    return profiles


class UnknownHeader(ValueError):
    """No profile recognises a file's header."""


def detect_profile(header: Sequence[str], profiles: dict[str, Profile], source: str) -> Profile:
    """The profile of ``source`` whose ``detect`` columns are all in ``header``.

    Where several match, the one that explains the most columns of the header wins.
    """
    candidates = [p for p in profiles.values() if p.source == source and p.matches(header)]
    if not candidates:
        known = ", ".join(sorted(p.name for p in profiles.values() if p.source == source))
        shown = ", ".join(repr(h) for h in list(header)[:8])
        raise UnknownHeader(
            f"unknown header for {source}: no profile matches columns [{shown}"
            f"{', ...' if len(header) > 8 else ''}] (known profiles: {known}; add a YAML "
            f"profile to the profiles folder for a new format)"
        )
    present = set(header)

    def explained(p: Profile) -> int:
        return len(present & set(p.identity_columns + p.detect))

    return max(candidates, key=lambda p: (explained(p), len(p.detect)))
