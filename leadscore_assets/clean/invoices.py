"""Invoice lines (UCI Online Retail layout) from raw text to typed, ruled lines.

Rules, in the order they take rows (each row counted once, under the first it breaks):

``ragged_row``, ``nul_byte``, ``unreadable_row``
    a record the reader could not split into the header's fields (see ``clean/rules.py``).
``exact_duplicate`` (removed)
    the same line (all eight fields) seen before, in this file or an earlier one.
``missing_invoice_no``, ``invalid_quantity``, ``invalid_unit_price``, ``invalid_invoice_date``
    a value that cannot be read with its file's decided formats (quantity must be a whole
    number).
``blank_description``
    a line with no description: stock adjustments, not sales.
``refund_invoice``
    every line of the invoice has a negative unit price: a refund, not a sale.
``bad_debt_adjustment``
    lines of ``A`` invoices (bookkeeping, not customers buying).
``non_positive_unit_price``
    zero or negative unit price (free samples, corrections).

Cancellation invoices (``C`` prefix) are kept as returns (``is_return``) with a negative
line total, so a customer's spend is net of what they sent back. A blank customer id is
filled from the other lines of the same invoice when they name exactly one customer.
No Dagster imports here.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from leadscore_assets.clean.rules import (
    LINEAGE,
    CleanResult,
    RuleBook,
    blank,
    lineage_order,
)
from leadscore_assets.ingest import formats
from leadscore_core.warehouse import INVOICE_COLUMNS

RAW_FIELDS = list(INVOICE_COLUMNS.values())
# Arrow-backed text: string functions run vectorised in Arrow instead of per Python object.
TEXT = "string[pyarrow]"
# Both layouts in circulation: the UCI file and the widely shared latin-1 copy.
DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S")

CLEAN_SQL = {
    "invoice_no": "VARCHAR", "stock_code": "VARCHAR", "description": "VARCHAR",
    "quantity": "INTEGER", "invoice_date": "TIMESTAMP", "unit_price": "DOUBLE",
    "customer_id": "VARCHAR", "country": "VARCHAR", "is_return": "BOOLEAN",
    "line_total": "DOUBLE", "_source_file": "VARCHAR", "_row_number": "BIGINT",
    "_ingested_at": "TIMESTAMP",
}


def normalise_customer_id(values: pd.Series) -> pd.Series:
    """``'17850.0'``, ``'17850'`` and ``' 17850 '`` are one customer: ``'17850'``."""
    s = values.astype(TEXT).str.strip().str.replace(r"\.0+$", "", regex=True)
    return s.mask(s == "")


def parse_numbers_and_dates(text: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Quantity, unit price and invoice date read from text; NaN/NaT where unreadable.

    Each row is read with its file's decided formats (``_formats``: decimal mark, thousands
    separator, day-month order); a value those formats cannot read is NaN/NaT, never read
    another way. Rows landed before formats were recorded use ISO or ``M/D/YYYY`` dates.
    DuckDB's ``TRY_CAST``/``TRY_STRPTIME`` do this in parallel over the Arrow buffers, several
    times faster than ``pd.to_numeric`` and per-format ``pd.to_datetime`` on 500k lines.
    """
    columns = ["quantity", "unit_price", "invoice_date"]
    decided = "_formats" in text.columns
    if decided:
        columns.append("_formats")
    kinds = sorted(text["_formats"].dropna().unique()) if decided else []

    def per_file(field: str, expr) -> str:
        cases = " ".join(f"WHEN _formats = '{f.replace(chr(39), chr(39) * 2)}' THEN "
                         f"{expr(formats.loads(f).get(field))}" for f in kinds)
        fallback = expr(None)
        return f"CASE {cases} ELSE {fallback} END" if cases else fallback

    def number(field: str):
        return lambda fmt: f"TRY_CAST({formats.number_sql(field, fmt)} AS DOUBLE)"

    def date(fmt) -> str:
        return formats.date_sql("invoice_date", fmt, DATE_FORMATS)

    with duckdb.connect() as conn:
        conn.register("invoice_text", text[columns])
        parsed = conn.sql(
            f"SELECT {per_file('quantity', number('quantity'))} AS quantity, "
            f"{per_file('unit_price', number('unit_price'))} AS unit_price, "
            f"{per_file('invoice_date', date)} AS invoice_date FROM invoice_text").df()
    parsed.index = text.index
    return (parsed["quantity"].astype("float64"), parsed["unit_price"].astype("float64"),
            parsed["invoice_date"].astype("datetime64[ns]"))


def clean_invoices(raw: pd.DataFrame) -> CleanResult:
    """Clean raw invoice lines (the columns of ``raw.invoices``, all text, plus lineage)."""
    df = lineage_order(raw)
    book = RuleBook(df, record_columns=RAW_FIELDS)
    exact = df[RAW_FIELDS].astype(TEXT)

    def stripped(field: str, rows: np.ndarray | None = None) -> pd.Series:
        # trimmed text only where it is used: a copy of every field of every line would be
        # the largest allocation of a multi-million-line clean
        values = exact[field] if rows is None else exact[field].iloc[rows]
        return values.str.strip()

    book.quarantine_malformed()
    book.remove("exact_duplicate", exact.duplicated(keep="first"))

    quantity, price, date = parse_numbers_and_dates(
        exact.assign(_formats=df["_formats"]) if "_formats" in df.columns else exact)
    invoice = stripped("invoice_no").str.upper()
    book.quarantine("missing_invoice_no", "invoice_no", blank(exact["invoice_no"]))
    book.quarantine("invalid_quantity", "quantity",
                    quantity.isna() | (quantity.round() != quantity))
    book.quarantine("invalid_unit_price", "unit_price", price.isna())
    book.quarantine("invalid_invoice_date", "invoice_date", date.isna())
    book.quarantine("blank_description", "description", blank(exact["description"]))

    alive = pd.Series(book.alive, index=df.index)
    all_negative = (price < 0)[alive].groupby(invoice[alive]).transform("all")
    book.quarantine("refund_invoice", "unit_price",
                    all_negative.reindex(df.index, fill_value=False))
    book.quarantine("bad_debt_adjustment", "invoice_no", invoice.str.startswith("A"))
    book.quarantine("non_positive_unit_price", "unit_price", price <= 0)

    # positions, not a boolean mask: taking rows is much cheaper on Arrow-backed columns
    keep = np.flatnonzero(book.alive)
    customer = normalise_customer_id(exact["customer_id"].iloc[keep])
    inv = invoice.iloc[keep]
    per_invoice = customer.groupby(inv).agg(["nunique", "first"])
    sole = per_invoice.loc[per_invoice["nunique"] == 1, "first"]
    fillable = customer.isna() & inv.isin(sole.index)
    customer = customer.where(~fillable, inv.map(sole))

    qty = quantity.iloc[keep].astype("int64")
    unit = price.iloc[keep].astype("float64")
    clean = pd.DataFrame({
        "invoice_no": inv,
        "stock_code": stripped("stock_code", keep),
        "description": stripped("description", keep),
        "quantity": qty,
        "invoice_date": date.iloc[keep],
        "unit_price": unit,
        "customer_id": customer,
        "country": stripped("country", keep),
        "is_return": inv.str.startswith("C").astype(bool),
        "line_total": np.round(qty * unit, 6),
        **{c: df[c].iloc[keep] for c in LINEAGE},
    }).reset_index(drop=True)
    return CleanResult(rows_in=len(df), clean=clean, quarantine=book.quarantine_frame(),
                       removed=book.removed, applied=book.applied,
                       repaired={"customer_id_filled_from_invoice": int(fillable.sum())})
