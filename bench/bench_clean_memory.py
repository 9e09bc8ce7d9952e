"""Peak memory of cleaning a 4x copy of Online Retail (2,167,636 lines), as the asset does.

Builds a raw table of four copies of ``../shared/data/online_retail_uci.csv.gz`` (each copy
its own file, so every copy's lines are cleaned, and duplicates across copies removed) in a
temporary DuckDB file, then in a fresh process reads ``raw.invoices`` the way
``clean/invoices`` does, cleans it and publishes the three tables, and prints the process's
peak resident memory (``ru_maxrss``) next to the raw table's size and the target, and a
content digest of the published clean table and quarantine (MD5 of their rows as text, in
table order) with the removal counts: two versions of the cleaning that print the same
digests published the same rows.

    uv run python bench/bench_clean_memory.py [--copies 4]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
DATA_FILE = PROJECT.parent / "shared" / "data" / "online_retail_uci.csv.gz"
TARGET_GB = 1.2


def build(database: Path, copies: int) -> int:
    import duckdb

    from leadscore_assets.ingest.assets import write_raw
    from leadscore_assets.ingest.readers import read_export

    export = read_export("invoices", DATA_FILE, {})
    with duckdb.connect(str(database)) as conn:
        for copy in range(copies):
            # a fixed landing time per copy: the same build gives the same digests
            write_raw(conn, "invoices", export, partition=f"copy{copy}",
                      file_name=f"copy{copy}.csv", sha256=f"{copy:064d}",
                      ingested_at=datetime(2026, 1, 1, 0, copy))
        return conn.execute("SELECT count(*) FROM raw.invoices").fetchone()[0]


def clean(database: Path) -> None:
    """The asset's own steps: read raw, clean, publish (run in a fresh process)."""
    import duckdb

    from leadscore_assets.clean.assets import clean_source, landed_files, publish, read_raw
    from leadscore_core.settings import Settings

    started = time.perf_counter()
    with duckdb.connect(str(database)) as conn:
        raw = read_raw(conn, "invoices")
        result, columns, _ = clean_source("invoices", raw, Settings())
        raw = landed_files(raw)
        publish(conn, "invoices", result, columns)
        rows_in, kept, quarantined = result.rows_in, len(result.clean), len(result.quarantine)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB -> GiB
        seconds = time.perf_counter() - started
        del raw, result
        # after the peak is read: digesting the published tables is not part of cleaning
        digests = [conn.execute(f"SELECT count(*), md5(coalesce(string_agg(t::VARCHAR, "
                                f"chr(10) ORDER BY rowid), '')) FROM {table} t").fetchone()
                   for table in ("clean.invoices", "quarantine.invoices")]
        removed = conn.execute("SELECT rule, rows FROM quarantine.removed_rows "
                               "WHERE source = 'invoices' ORDER BY rule").fetchall()
    print(f"digest clean {digests[0][0]:,} rows md5 {digests[0][1]}")
    print(f"digest quarantine {digests[1][0]:,} rows md5 {digests[1][1]}")
    print(f"digest removed {dict(removed)}")
    print(f"{rows_in:,} {kept:,} {quarantined:,} {seconds:.1f} {peak:.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--clean-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.clean_only:
        clean(args.clean_only)
        return 0
    if not DATA_FILE.is_file():
        print(f"skipped: {DATA_FILE} not found")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        database = Path(tmp) / "warehouse.duckdb"
        lines = build(database, args.copies)
        out = subprocess.run([sys.executable, __file__, "--clean-only", str(database)],
                             check=True, capture_output=True, text=True).stdout
    lines_out = out.splitlines()
    digests = [line for line in lines_out if line.startswith("digest ")]
    rows_in, kept, quarantined, seconds, peak = lines_out[-1].split()
    print(f"{args.copies}x Online Retail: {lines:,} raw lines in raw.invoices")
    print(f"  cleaned: {rows_in} in, {kept} clean, {quarantined} quarantined in {seconds} s")
    print(f"  peak memory (ru_maxrss) {float(peak):.2f} GB  (target < {TARGET_GB} GB)")
    for line in digests:
        print(f"  {line}")
    return 0 if float(peak) < TARGET_GB else 1


if __name__ == "__main__":
    raise SystemExit(main())
