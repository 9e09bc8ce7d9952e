"""Cleaning the full Online Retail file, checks included, next to plain pandas.

leadscore: ``clean_invoices`` (every rule, quarantine with the raw row as JSON, removal
counts), the tables written to a DuckDB file, read back, the pandera schema validated and the
identity raw = clean + quarantined + removed checked, as the asset and its checks do.
Baseline: the same rules written the obvious way in pandas, keeping only the clean lines (no
quarantine, no checks, no warehouse). Both start from the same raw text frame; reading the
file is ingestion's cost and is not timed.

    uv run python bench/bench_clean.py [path/to/online_retail.csv.gz] [--repeat N]

Each side runs ``N`` times (default 3) and the fastest run is reported, so that other work on
a shared machine distorts the figures less.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd

from leadscore_assets.clean.assets import publish
from leadscore_assets.clean.invoices import CLEAN_SQL, clean_invoices
from leadscore_assets.ingest.readers import read_export
from leadscore_assets.schemas import CleanInvoices, read_table, validate
from leadscore_core.profiles import load_profiles

DEFAULT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / \
    "online_retail_uci.csv.gz"
TARGET_SECONDS = 10.0


def plain_pandas(raw: pd.DataFrame) -> pd.DataFrame:
    """The invoice rules, written the obvious way."""
    fields = ["invoice_no", "stock_code", "description", "quantity", "invoice_date",
              "unit_price", "customer_id", "country"]
    df = raw.drop_duplicates(subset=fields).copy()
    df = df[df["description"].fillna("").str.strip() != ""]
    df["quantity"] = pd.to_numeric(df["quantity"])
    df["unit_price"] = pd.to_numeric(df["unit_price"])
    refund = df.groupby("invoice_no")["unit_price"].transform(lambda p: (p < 0).all())
    df = df[~refund]
    df = df[~df["invoice_no"].str.startswith("A")]
    df = df[df["unit_price"] > 0]
    df["invoice_date"] = pd.to_datetime(df["invoice_date"], format="mixed")
    df["customer_id"] = df["customer_id"].str.replace(r"\.0$", "", regex=True).replace("", None)
    sole = df.dropna(subset=["customer_id"]).groupby("invoice_no")["customer_id"].agg(
        lambda c: c.iloc[0] if c.nunique() == 1 else None)
    df["customer_id"] = df["customer_id"].fillna(df["invoice_no"].map(sole))
    df["is_return"] = df["invoice_no"].str.startswith("C")
    df["line_total"] = df["quantity"] * df["unit_price"]
    return df


def leadscore_with_checks(raw: pd.DataFrame, database: Path) -> tuple[int, bool]:
    result = clean_invoices(raw)
    with duckdb.connect(str(database)) as conn:
        publish(conn, "invoices", result, CLEAN_SQL)
        stored = read_table(conn, "clean.invoices")
        quarantined = conn.execute("SELECT count(*) FROM quarantine.invoices").fetchone()[0]
        removed = conn.execute("SELECT sum(rows) FROM quarantine.removed_rows").fetchone()[0]
    outcome = validate(CleanInvoices, stored)
    identity = result.rows_in == len(stored) + quarantined + removed
    return len(stored), outcome.passed and identity


def main() -> None:
    args = sys.argv[1:]
    repeat = 3
    if "--repeat" in args:
        at = args.index("--repeat")
        repeat = int(args[at + 1])
        del args[at:at + 2]
    path = Path(args[0]) if args else DEFAULT
    if not path.exists():
        sys.exit(f"no data at {path}: pass the Online Retail file as the first argument")
    raw = read_export("invoices", path, load_profiles()).frame.copy()
    raw["_source_file"], raw["_ingested_at"] = path.name, pd.Timestamp.now()
    print(f"{len(raw):,} raw invoice lines from {path.name}; best of {repeat} runs each")

    ours, baseline = [], []
    for attempt in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            rows, passed = leadscore_with_checks(raw, Path(tmp) / f"bench{attempt}.duckdb")
            ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        baseline_rows = len(plain_pandas(raw))
        baseline.append(time.perf_counter() - start)

    best, base = min(ours), min(baseline)
    print(f"leadscore (rules + quarantine + warehouse + checks): {best:6.2f} s  "
          f"{rows:,} clean lines, checks {'passed' if passed else 'FAILED'}")
    print(f"plain pandas (rules only):                          {base:6.2f} s  "
          f"{baseline_rows:,} clean lines")
    print(f"ratio leadscore / plain pandas: {best / base:.2f}x   "
          f"target < {TARGET_SECONDS:.0f} s: {'met' if best < TARGET_SECONDS else 'MISSED'}")
    if rows != baseline_rows:
        print(f"note: the two disagree by {rows - baseline_rows:+,} lines")


if __name__ == "__main__":
    main()
