"""Leads and customers from raw text to one typed row each, per the active source profile.

The raw layer keeps each row as JSON with the profile that recognised its file. Rows of the
active profile are typed by ``Profile.resolve(header).type_frame``: placeholders (``Select``)
become null, categories are normalised (case, whitespace), numbers and flags typed, the
profile's repairs applied (Telco's blank ``TotalCharges`` at tenure 0 is 0), the label
becomes a boolean.

Rules, in order: ``other_profile`` (removed: rows of another profile stay in raw for when
that profile is active), ``missing_id``, ``invalid_created_at``, ``ambiguous_timezone`` (a
created time without a UTC offset beside times with one, nothing declared: both readings
kept as the value), ``invalid_label``, ``invalid_number``, ``invalid_flag`` (a feature value
the profile cannot read; quarantined with the field and the value as written),
``superseded_version`` (removed: a record exported again keeps its latest version, by created
time, then ingestion time, then position in the file).
No Dagster imports here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from leadscore_assets.clean.rules import LINEAGE, CleanResult, RuleBook, lineage_order
from leadscore_assets.ingest import formats
from leadscore_core.profiles import UNREADABLE_RULES, Profile, ResolvedProfile
from leadscore_core.times import in_timezone

PROBLEM_RULES = ("missing_id", "invalid_created_at", "ambiguous_timezone", "invalid_label")
VALUE_RULES = tuple(UNREADABLE_RULES.values())  # a feature value the profile cannot read
KIND_SQL = {"categorical": "VARCHAR", "numeric": "DOUBLE", "boolean": "BOOLEAN"}


@dataclass(frozen=True)
class RecordShape:
    """How a source's clean table names its identity columns."""

    source: str
    id_column: str
    label_column: str


SHAPES = {
    "leads": RecordShape("leads", "lead_id", "converted"),
    "customers": RecordShape("customers", "customer_id", "churned"),
}


def clean_sql(source: str, resolved: ResolvedProfile | None) -> dict[str, str]:
    """Column -> DuckDB type of ``clean.<source>`` for a resolved profile."""
    shape = SHAPES[source]
    columns = {shape.id_column: "VARCHAR", "profile": "VARCHAR", "created_at": "TIMESTAMP",
               "email": "VARCHAR", shape.label_column: "BOOLEAN"}
    if resolved is not None:
        for name, kind in resolved.feature_columns.items():
            if name in columns or name in LINEAGE:
                raise ValueError(f"profile {resolved.profile.name}: feature {name!r} clashes "
                                 f"with a column of clean.{source}")
            columns[name] = KIND_SQL[kind]
    return {**columns, "_source_file": "VARCHAR", "_row_number": "BIGINT",
            "_ingested_at": "TIMESTAMP"}


def record_header(records: list[dict]) -> list[str]:
    """Union of the records' columns, in first-seen order (files of one profile may differ)."""
    seen: dict[str, None] = {}
    for record in records:
        for key in record:
            seen.setdefault(key, None)
    return list(seen)


def read_with_formats(text: pd.DataFrame, decided: pd.Series, profile: Profile) -> pd.DataFrame:
    """Number and date text rewritten canonically with each row's file decisions
    (``_formats``): ``83807,86`` from a decimal-comma file is ``83807.86``, ``01/02/2024``
    from a day-first file is ``2024-02-01 00:00:00``. A number its file's format cannot read
    becomes ``invalid`` (quarantined with its row), never read another way. A created time
    without a UTC offset from a file with a declared ``timezone`` (the file's decision, else
    the profile's) is rewritten in UTC (:func:`leadscore_core.times.in_timezone`)."""
    keys = decided.astype("string").fillna("").to_numpy()
    out = text.copy()
    created = profile.created_at.column if profile.created_at else None
    for key in pd.unique(keys):
        fmt = formats.loads(key)
        rows = keys == key
        zone = (fmt.get(created) or {}).get("timezone") or profile.timezone
        if zone and created in out.columns and created not in fmt:
            fmt[created] = {"timezone": zone}  # the profile's: no order decided
        if not fmt:
            continue
        for column, decision in fmt.items():
            if column not in out.columns:
                continue
            values = out.loc[rows, column]
            if "decimal" in decision:
                read = formats.canonical_numbers(
                    pa.array(values.astype(object).where(values.notna(), None).to_numpy(),
                             pa.string()), decision).to_pandas()
                read = pd.Series(read.to_numpy(object), index=values.index, dtype="string")
                out.loc[rows, column] = read.mask(values.notna() & read.isna(), "invalid")
            elif column == created:
                read = (formats.canonical_dates(values, decision.get("date_order"))
                        if "date_order" in decision else values)
                out.loc[rows, column] = in_timezone(
                    read, zone, profile.created_at.format) if zone else read
    return out


def clean_records(raw: pd.DataFrame, source: str, profile: Profile) -> tuple[
        CleanResult, ResolvedProfile]:
    """Clean ``raw.leads`` or ``raw.customers`` rows for the active ``profile``."""
    shape = SHAPES[source]
    df = lineage_order(raw)
    book = RuleBook(df, record_json=df["record"])
    book.quarantine_malformed()
    book.remove("other_profile", df["profile"].astype("string") != profile.name)

    mine = np.flatnonzero(book.alive)
    records = [json.loads(r) for r in df["record"].iloc[mine]]
    header = record_header(records)
    text = pd.DataFrame.from_records(records, columns=header, index=mine) if records else (
        pd.DataFrame(columns=header, index=mine))
    resolved = profile.resolve(header)
    written = text
    decided = df["_formats"].iloc[mine] if "_formats" in df.columns else pd.Series(
        pd.NA, index=mine, dtype="string")
    text = read_with_formats(text, decided, profile)
    typed = resolved.type_frame(text)
    frame = typed.frame.set_axis(mine)

    problems = pd.concat([typed.problems, typed.unreadable], ignore_index=True)
    for rule in (*PROBLEM_RULES, *VALUE_RULES):
        found = problems[problems["rule"] == rule]
        if found.empty:
            book.applied.setdefault(rule, 0)
            continue
        for field_name, cells in found.groupby("field", sort=False):
            rows = cells["row"].astype("int64").to_numpy()
            mask = np.zeros(len(df), dtype=bool)
            mask[rows] = True
            values = pd.Series(pd.NA, index=df.index, dtype="string")
            # the value as the file wrote it, not as the file's format rewrote it; a time
            # that cannot be placed on the clock keeps its reason with both readings
            shown = (written.loc[rows, field_name] if field_name in written.columns
                     and rule != "ambiguous_timezone" else cells["value"])
            values.iloc[rows] = shown.to_numpy()
            book.quarantine(rule, str(field_name), mask, values)

    alive = np.flatnonzero(book.alive)
    typed_alive = frame.loc[alive]
    # df is in landing order, so position breaks ties between equal created times
    ranking = pd.DataFrame({"key": typed_alive["record_id"],
                            "created_at": typed_alive["created_at"], "position": alive},
                           index=alive)
    ranked = ranking.sort_values(["created_at", "position"], kind="stable", na_position="first")
    stale = np.zeros(len(df), dtype=bool)
    stale[ranked.index[ranked.duplicated("key", keep="last")]] = True
    book.remove("superseded_version", stale)

    keep = np.flatnonzero(book.alive)
    out = frame.loc[keep]
    features = list(resolved.feature_columns)
    clean = pd.concat([
        pd.DataFrame({
            shape.id_column: out["record_id"].astype("string"),
            "profile": pd.Series(profile.name, index=keep, dtype="string"),
            "created_at": out["created_at"].astype("datetime64[ns]"),
            "email": out["email"].astype("string"),
            shape.label_column: out["label"].astype("boolean"),
        }),
        out[features],
        df.iloc[keep][LINEAGE].set_axis(keep),
    ], axis=1).reset_index(drop=True)
    repaired = {k: v for k, v in typed.field_counts.items() if v}
    return CleanResult(rows_in=len(df), clean=clean, quarantine=book.quarantine_frame(),
                       removed=book.removed, applied=book.applied, repaired=repaired), resolved
