"""What a clean table must look like: one pandera ``DataFrameModel`` per table.

The models describe the tables as they are read back from the warehouse (DuckDB returns
VARCHAR as Python strings, DECIMAL as floats, nullable BOOLEAN as objects), so types are
coerced before checking. Lead and customer tables also carry the active profile's feature
columns, which vary by profile: the models fix the identity and lineage columns and a
table-wide check requires every text feature to be normalised (trimmed, lower-case).

``validate`` runs a model lazily and reports the number of failing rows, failures per
check and a sample of the failing rows, which the asset checks show as metadata.
No Dagster imports here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import pandas as pd
import pandera.pandas as pa
import pyarrow
from pandas.api.types import is_string_dtype
from pandera.typing.pandas import Series

from leadscore_assets.clean.payments import STATUSES

MIN_DATE = pd.Timestamp("1990-01-01")


def text(**kwargs):
    """A text column, checked as Arrow-backed strings (vectorised, unlike Python objects)."""
    return pa.Field(dtype_kwargs={"storage": "pyarrow"}, **kwargs)

IDENTITY = ("profile", "created_at", "email", "_source_file", "_row_number", "_ingested_at")


class Lineage(pa.DataFrameModel):
    _source_file: Series[pd.StringDtype] = text(description="File the row was landed from")
    _row_number: Series[int] = pa.Field(ge=1, description="1-based record number in the file")
    _ingested_at: Series[pd.Timestamp] = pa.Field(description="When the file was landed (UTC)")

    class Config:
        coerce = True
        strict = False

    @pa.dataframe_check(description="one clean row per raw row")
    def one_row_per_raw_row(cls, df: pd.DataFrame) -> Series[bool]:
        # a file name landed again with new content is a new landing (new _ingested_at)
        return ~df.duplicated(["_source_file", "_row_number", "_ingested_at"], keep=False)


class CleanInvoices(Lineage):
    """``clean.invoices``: one invoice line, returns included, netted by sign."""

    invoice_no: Series[pd.StringDtype] = text(str_matches=r"^[A-Z]?\d+$",
                                       description="Invoice number; C prefix: cancellation")
    stock_code: Series[pd.StringDtype] = text(description="Product code")
    description: Series[pd.StringDtype] = text(str_length={"min_value": 1},
                                        description="Product description, never blank")
    quantity: Series[int] = pa.Field(ne=0, description="Units; negative on returns")
    invoice_date: Series[pd.Timestamp] = pa.Field(ge=MIN_DATE, description="Invoice time")
    unit_price: Series[float] = pa.Field(gt=0, description="Price per unit, positive")
    customer_id: Series[pd.StringDtype] = text(nullable=True, str_matches=r"^[^\s.]+$",
                                        description="Customer, normalised (no '.0')")
    country: Series[pd.StringDtype] = text(nullable=True, description="Customer's country")
    is_return: Series[bool] = pa.Field(description="Line of a cancellation (C) invoice")
    line_total: Series[float] = pa.Field(description="quantity x unit_price")

    @pa.dataframe_check(description="is_return exactly for C invoices")
    def returns_are_cancellations(cls, df: pd.DataFrame) -> Series[bool]:
        return df["is_return"] == df["invoice_no"].str.startswith("C")

    @pa.dataframe_check(description="line_total = quantity x unit_price")
    def line_total_is_product(cls, df: pd.DataFrame) -> Series[bool]:
        return (df["line_total"] - df["quantity"] * df["unit_price"]).abs() < 1e-6


class CleanPayments(Lineage):
    """``clean.payments``: one payment attempt, amounts in the currency's major unit."""

    payment_id: Series[pd.StringDtype] = text(unique=True, description="Stripe charge or intent id")
    object_type: Series[pd.StringDtype] = text(
        isin=["charge", "payment_intent"],
        description="charge, or a payment intent that never reached a charge")
    created_at: Series[pd.Timestamp] = pa.Field(ge=MIN_DATE, description="Created (UTC)")
    amount: Series[float] = pa.Field(ge=0, description="Amount in major units")
    amount_refunded: Series[float] = pa.Field(ge=0, description="Refunded, major units")
    currency: Series[pd.StringDtype] = text(str_matches=r"^[A-Z]{3}$", description="ISO 4217 code")
    status: Series[pd.StringDtype] = text(isin=list(STATUSES), description="Outcome of the attempt")
    failure_code: Series[pd.StringDtype] = text(nullable=True,
                                                description="Why a payment failed")
    customer_id: Series[pd.StringDtype] = text(nullable=True, description="Stripe customer")
    customer_email: Series[pd.StringDtype] = text(nullable=True, str_matches=r"^[^A-Z]*$",
                                           description="Lower-case email")
    plan: Series[pd.StringDtype] = text(nullable=True, description="Plan from the catalogue")
    setup_fee: Series[bool] = pa.Field(description="Amount includes the setup fee")

    @pa.dataframe_check(description="never more refunded than paid")
    def refund_within_amount(cls, df: pd.DataFrame) -> Series[bool]:
        return df["amount_refunded"] <= df["amount"]


class ProfiledRecords(Lineage):
    profile: Series[pd.StringDtype] = text(description="Source profile the row was typed with")
    created_at: Series[pd.Timestamp] = pa.Field(nullable=True, ge=MIN_DATE,
                                                description="When the record was created")
    email: Series[pd.StringDtype] = text(nullable=True, str_matches=r"^[^A-Z]*$",
                                  description="Lower-case email")

    @pa.dataframe_check(description="text features trimmed, lower-case, no placeholders")
    def categories_normalised(cls, df: pd.DataFrame) -> Series[bool]:
        text = df[[c for c in df.columns if c not in IDENTITY and is_string_dtype(df[c])
                   and c not in ("lead_id", "customer_id")]]
        ok = text.apply(lambda s: s.isna() | (
            (s.astype("string").str.strip().str.lower() == s.astype("string"))
            & (s.astype("string") != "") & (s.astype("string") != "select")))
        return ok.fillna(True).astype(bool).all(axis=1)


class CleanLeads(ProfiledRecords):
    """``clean.leads``: one lead (its latest version) with the active profile's features."""

    lead_id: Series[pd.StringDtype] = text(unique=True, description="The profile's lead id")
    converted: Series[pd.BooleanDtype] = pa.Field(nullable=True, description="Label")


class CleanCustomers(ProfiledRecords):
    """``clean.customers``: one customer with the active profile's features."""

    customer_id: Series[pd.StringDtype] = text(unique=True, description="The profile's customer id")
    churned: Series[pd.BooleanDtype] = pa.Field(nullable=True, description="Label")


MODELS: dict[str, type[pa.DataFrameModel]] = {
    "leads": CleanLeads, "customers": CleanCustomers,
    "payments": CleanPayments, "invoices": CleanInvoices,
}


ARROW_TO_PANDAS = {pyarrow.string(): pd.StringDtype("pyarrow"),
                   pyarrow.large_string(): pd.StringDtype("pyarrow"),
                   pyarrow.bool_(): pd.BooleanDtype()}


def read_table(conn: duckdb.DuckDBPyConnection, table: str) -> pd.DataFrame:
    """A warehouse table as pandas with Arrow-backed text, the fast path for validation."""
    arrow = conn.sql(f"SELECT * FROM {table}").to_arrow_table()
    return arrow.to_pandas(types_mapper=ARROW_TO_PANDAS.get)


@dataclass
class Validation:
    passed: bool
    rows: int
    failing_rows: int
    failures_by_check: dict[str, int] = field(default_factory=dict)
    sample: pd.DataFrame = field(default_factory=pd.DataFrame)
    failure_cases: pd.DataFrame = field(default_factory=pd.DataFrame)


def validate(model: type[pa.DataFrameModel], frame: pd.DataFrame,
             sample_rows: int = 5) -> Validation:
    """Run ``model`` on ``frame`` collecting every failure instead of stopping at the first."""
    try:
        model.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        index = pd.to_numeric(cases["index"], errors="coerce").dropna().astype("int64").unique()
        # failures without a row (a missing column, a wrong dtype) fail the whole table
        failing = len(frame) if cases["index"].isna().any() else len(index)
        table_wide = cases["schema_context"].eq("DataFrameSchema")
        name = cases["check"].astype(str).where(
            table_wide, cases["column"].astype(str) + ":" + cases["check"].astype(str))
        by_check = {str(k): int(n) for k, n in cases.assign(name=name).groupby("name")["index"]
                    .nunique(dropna=False).items()}
        sample = frame.loc[frame.index.intersection(index[:sample_rows])]
        return Validation(False, len(frame), int(failing), by_check, sample, cases)
    return Validation(True, len(frame), 0)
