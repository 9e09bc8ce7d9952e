"""Leads and customers from raw text to one typed row each, per the active source profile.

The raw layer keeps each row as JSON with the profile that recognised its file. Rows of the
active profile are typed by ``Profile.resolve(header).type_frame``: placeholders (``Select``)
become null, categories are normalised (case, whitespace), numbers and flags typed, the
profile's repairs applied (Telco's blank ``TotalCharges`` at tenure 0 is 0), the label
becomes a boolean.

Rules, in order: ``other_profile`` (removed: rows of another profile stay in raw for when
that profile is active), ``missing_id``, ``invalid_created_at``, ``invalid_label``
(quarantined), ``superseded_version`` (removed: a record exported again keeps its latest
version, by created time, then ingestion time, then position in the file).
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
from leadscore_core.profiles import Profile, ResolvedProfile

PROBLEM_RULES = ("missing_id", "invalid_created_at", "invalid_label")
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
    becomes ``invalid`` (typed as null and counted), never read another way."""
    keys = decided.astype("string").fillna("").to_numpy()
    out = text.copy()
    created = profile.created_at.column if profile.created_at else None
    for key in pd.unique(keys):
        fmt = formats.loads(key)
        if not fmt:
            continue
        rows = keys == key
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
                out.loc[rows, column] = formats.canonical_dates(values,
                                                                decision.get("date_order"))
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
    if "_formats" in df.columns:
        text = read_with_formats(text, df["_formats"].iloc[mine], profile)
    typed = resolved.type_frame(text)
    frame = typed.frame.set_axis(mine)

    problems = typed.problems
    for rule in PROBLEM_RULES:
        found = problems[problems["rule"] == rule]
        if found.empty:
            book.applied.setdefault(rule, 0)
            continue
        mask = np.zeros(len(df), dtype=bool)
        mask[found["row"].astype("int64").to_numpy()] = True
        values = pd.Series(pd.NA, index=df.index, dtype="string")
        values.iloc[found["row"].astype("int64").to_numpy()] = found["value"].to_numpy()
        book.quarantine(rule, str(found["field"].iloc[0]), mask, values)

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
