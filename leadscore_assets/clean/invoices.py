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

from leadscore_assets.clean.rules import LINEAGE, CleanResult, RuleBook, blank, lineage_order
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


class Coded:
    """One text field as codes into its distinct values (``-1``: null).

    A field of a few thousand distinct values over millions of lines (stock codes, dates,
    countries) is read, trimmed and tested once per distinct value and the answer taken to
    every line by its code: no step holds a string per line of every field (read_raw
    delivers these fields as categories for that reason).
    """

    def __init__(self, values: pd.Series):
        if isinstance(values.dtype, pd.CategoricalDtype):
            codes = values.cat.codes.to_numpy()
            distinct = pd.Series(values.cat.categories).astype(TEXT)
        else:
            codes, uniques = pd.factorize(values.astype(TEXT))
            distinct = pd.Series(uniques, dtype=TEXT)
        # categories that are one text once read as text (1 and '1') are one value
        self.codes, self.values = _merged(codes, distinct)

    def test(self, outcome: pd.Series, null: bool = False) -> np.ndarray:
        """Per line, a boolean computed on the distinct values (``null``: for null lines)."""
        flags = np.append(outcome.fillna(False).to_numpy(dtype=bool), null)
        return flags[self.codes]  # code -1: the appended answer for null

    def map(self, distinct: pd.Series) -> Coded:
        """The field with each distinct value replaced by ``distinct`` (same positions)."""
        out = Coded.__new__(Coded)
        out.codes, out.values = _merged(self.codes, distinct.astype(TEXT))
        return out

    def text(self, rows: np.ndarray) -> pd.Series:
        """The text of ``rows`` (positions), indexed by them."""
        return pd.Series(self.values.array.take(self.codes[rows], allow_fill=True),
                         index=rows, dtype=TEXT)


def _merged(codes: np.ndarray, distinct: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """``codes`` into ``distinct`` re-pointed at the distinct values of ``distinct``."""
    merged, uniques = pd.factorize(distinct)
    if len(uniques) == len(distinct) and (merged == np.arange(len(merged))).all():
        return codes, pd.Series(uniques, dtype=TEXT)  # nothing merged: the same codes
    return np.append(merged, -1).astype(np.int32)[codes], pd.Series(uniques, dtype=TEXT)


def duplicated_lines(fields: list[Coded]) -> np.ndarray:
    """True for a line whose every field equals that of an earlier line (nulls equal).

    The fields' codes are combined into one integer per line (renumbered densely when the
    next field would overflow it), so the check holds one key per line, not every field.
    """
    key = np.zeros(len(fields[0].codes) if fields else 0, dtype=np.int64)
    span = 1
    for field in fields:
        size = len(field.values) + 1
        if span * size >= 2 ** 62:
            key, distinct = pd.factorize(key)
            span = len(distinct)
        key = key * size + (field.codes.astype(np.int64) + 1)
        span *= size
    return pd.Series(key).duplicated(keep="first").to_numpy()


def parse_numbers_and_dates(fields: dict[str, Coded], decided: Coded | None,
                            index: pd.Index) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Quantity, unit price and invoice date read from text; NaN/NaT where unreadable.

    Each row is read with its file's decided formats (``_formats``: decimal mark, thousands
    separator, day-month order); a value those formats cannot read is NaN/NaT, never read
    another way. Rows landed before formats were recorded use ISO or ``M/D/YYYY`` dates.
    Each distinct (value, formats) pair is read once, by DuckDB's ``TRY_CAST`` /
    ``TRY_STRPTIME``, and the reading taken to every line with that pair.
    """
    kinds = sorted(decided.values.dropna().unique()) if decided is not None else []
    n = len(index)
    file_codes = decided.codes if decided is not None else np.full(n, -1)
    file_values = decided.values if decided is not None else pd.Series([], dtype=TEXT)

    def per_file(field: str, expr) -> str:
        cases = " ".join(f"WHEN _formats = '{f.replace(chr(39), chr(39) * 2)}' THEN "
                         f"{expr(formats.loads(f).get(field))}" for f in kinds)
        fallback = expr(None)
        return f"CASE {cases} ELSE {fallback} END" if cases else fallback

    def number(field: str):
        return lambda fmt: f"TRY_CAST({formats.number_sql(field, fmt)} AS DOUBLE)"

    def date(fmt) -> str:
        return formats.date_sql("invoice_date", fmt, DATE_FORMATS)

    def read(field: str, sql: str) -> np.ndarray:
        coded = fields[field]
        pairs, inverse = _pairs(coded.codes, file_codes, len(file_values))
        text = pd.DataFrame({
            field: coded.values.array.take(pairs[0], allow_fill=True),
            "_formats": file_values.array.take(pairs[1], allow_fill=True)})
        with duckdb.connect() as conn:
            conn.register("invoice_text", text)
            parsed = conn.sql(f"SELECT {sql} AS {field} FROM invoice_text").df()[field]
        return parsed.to_numpy()[inverse]

    quantity = read("quantity", per_file("quantity", number("quantity")))
    price = read("unit_price", per_file("unit_price", number("unit_price")))
    when = read("invoice_date", per_file("invoice_date", date))
    return (pd.Series(quantity, index=index).astype("float64"),
            pd.Series(price, index=index).astype("float64"),
            pd.Series(when, index=index).astype("datetime64[ns]"))


def _pairs(first: np.ndarray, second: np.ndarray, second_size: int) -> tuple[
        tuple[np.ndarray, np.ndarray], np.ndarray]:
    """The distinct (first, second) code pairs, and each line's position among them."""
    key = (first.astype(np.int64) + 1) * (second_size + 1) + (second.astype(np.int64) + 1)
    inverse, distinct = pd.factorize(key)
    return (distinct // (second_size + 1) - 1, distinct % (second_size + 1) - 1), inverse


def clean_invoices(raw: pd.DataFrame) -> CleanResult:
    """Clean raw invoice lines (the columns of ``raw.invoices``, all text, plus lineage)."""
    df = lineage_order(raw)
    book = RuleBook(df, record_columns=RAW_FIELDS)
    exact = {name: Coded(df[name]) for name in RAW_FIELDS}
    stripped = {name: exact[name].map(exact[name].values.str.strip())
                for name in ("stock_code", "description", "country")}

    book.quarantine_malformed()
    book.remove("exact_duplicate", duplicated_lines(list(exact.values())))

    quantity, price, date = parse_numbers_and_dates(
        exact, Coded(df["_formats"]) if "_formats" in df.columns else None, df.index)
    invoice = exact["invoice_no"].map(exact["invoice_no"].values.str.strip().str.upper())
    book.quarantine("missing_invoice_no", "invoice_no",
                    exact["invoice_no"].test(blank(exact["invoice_no"].values), null=True))
    book.quarantine("invalid_quantity", "quantity",
                    quantity.isna() | (quantity.round() != quantity))
    book.quarantine("invalid_unit_price", "unit_price", price.isna())
    book.quarantine("invalid_invoice_date", "invoice_date", date.isna())
    book.quarantine("blank_description", "description",
                    exact["description"].test(blank(exact["description"].values), null=True))

    # every alive line of the invoice has a negative price (counted per invoice code)
    alive = np.flatnonzero(book.alive & (invoice.codes >= 0))
    groups = invoice.codes[alive]
    lines = np.bincount(groups, minlength=len(invoice.values))
    negative = np.bincount(groups, weights=(price.to_numpy()[alive] < 0),
                           minlength=len(invoice.values))
    all_negative = np.zeros(len(df), dtype=bool)
    all_negative[alive] = (negative == lines)[groups]
    book.quarantine("refund_invoice", "unit_price", all_negative)
    book.quarantine("bad_debt_adjustment", "invoice_no",
                    invoice.test(invoice.values.str.startswith("A")))
    book.quarantine("non_positive_unit_price", "unit_price", price <= 0)

    keep = np.flatnonzero(book.alive)
    customer = exact["customer_id"].map(normalise_customer_id(exact["customer_id"].values))
    customer = customer.text(keep)
    inv = invoice.text(keep)
    per_invoice = customer.groupby(inv).agg(["nunique", "first"])
    sole = per_invoice.loc[per_invoice["nunique"] == 1, "first"]
    fillable = customer.isna() & inv.isin(sole.index)
    customer = customer.where(~fillable, inv.map(sole))

    qty = quantity.iloc[keep].astype("int64")
    unit = price.iloc[keep].astype("float64")
    clean = pd.DataFrame({
        "invoice_no": inv,
        "stock_code": stripped["stock_code"].text(keep),
        "description": stripped["description"].text(keep),
        "quantity": qty,
        "invoice_date": date.iloc[keep],
        "unit_price": unit,
        "customer_id": customer,
        "country": stripped["country"].text(keep),
        "is_return": inv.str.startswith("C").astype(bool),
        "line_total": np.round(qty * unit, 6),
        **{c: df[c].iloc[keep] for c in LINEAGE},
    }).reset_index(drop=True)
    return CleanResult(rows_in=len(df), clean=clean, quarantine=book.quarantine_frame(),
                       removed=book.removed, applied=book.applied,
                       repaired={"customer_id_filled_from_invoice": int(fillable.sum())})
