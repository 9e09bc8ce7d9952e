"""Landing the full Online Retail file vs a bare ``pandas.read_csv`` of it, side by side.

Lands ``../shared/data/online_retail_uci.csv.gz`` (541,909 lines) into a temporary DuckDB
file through the raw asset's own steps (hash, ``read_export``, ``write_raw``: invoices
need no source profile) and reads the
same file with ``pandas.read_csv``, alternating the two so both see the same machine load.
Prints the best of ``--repeat`` runs of each and the ratio (target: at most 1.5), and the
CPU seconds of each: on a loaded machine the wall-clock ratio drifts towards the CPU ratio,
because the landing's parallel parsing no longer gets a free core. The landing's CPU is
split into reading (decompress, parse, evidence: ``read_export``) and writing
(``write_raw``), next to DuckDB's own ``read_csv`` straight into a table of the same file
(no evidence, no quarantine), and the CPU of storing the landed Arrow rows alone in a
table of their own (no lineage, no file row), fed as ``write_raw`` feeds them: the cost of
writing the table at all. Last, the CPU of reading a copy with one ragged line (a field too
many), whose misfit is marked in its place while the other 541,908 lines land.

    uv run python bench/bench_ingest.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from leadscore_assets.ingest.assets import row_group_chunks, write_raw
from leadscore_assets.ingest.landing import LandingZone, partition_key
from leadscore_assets.ingest.readers import read_export

PROJECT = Path(__file__).resolve().parents[1]
DATA_FILE = PROJECT.parent / "shared" / "data" / "online_retail_uci.csv.gz"
EXPECTED_ROWS = 541_909
TARGET_RATIO = 1.5


def land_once(landing: LandingZone, warehouse: Path) -> tuple[float, float, int, float, Any]:
    """(seconds, CPU seconds, rows, CPU seconds of reading, the rows read)."""
    warehouse.unlink(missing_ok=True)
    name = DATA_FILE.name
    start, cpu = time.perf_counter(), time.process_time()
    sha = landing.sha256("invoices", name)
    export = read_export("invoices", landing.local_path("invoices", name), {})
    reading = time.process_time() - cpu
    with duckdb.connect(str(warehouse)) as conn:
        write_raw(conn, "invoices", export, partition=partition_key(name, sha),
                  file_name=name, sha256=sha)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        rows = conn.execute("SELECT count(*) FROM raw.invoices").fetchone()[0]
    return seconds, cpu, rows, reading, export.table


def store_once(table: Any, warehouse: Path) -> float:
    """CPU seconds of ``CREATE TABLE ... AS`` the landed rows, nothing else."""
    warehouse.unlink(missing_ok=True)
    with duckdb.connect(str(warehouse)) as conn:
        conn.register("landed", row_group_chunks(table.drop_columns(["_encoding", "_formats"])))
        cpu = time.process_time()
        conn.execute("CREATE TABLE invoices AS SELECT * FROM landed")
    return time.process_time() - cpu


def duckdb_once(warehouse: Path) -> tuple[float, float, int]:
    """DuckDB's own CSV reader straight into a table: no evidence, nothing quarantined."""
    warehouse.unlink(missing_ok=True)
    start, cpu = time.perf_counter(), time.process_time()
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("CREATE TABLE invoices AS SELECT * FROM read_csv(?, all_varchar = true)",
                     [str(DATA_FILE)])
        rows = conn.execute("SELECT count(*) FROM invoices").fetchone()[0]
    return time.perf_counter() - start, time.process_time() - cpu, rows


def ragged_once(folder: Path) -> tuple[float, int, int]:
    """(CPU seconds of ``read_export``, rows, malformed rows) for a copy with one ragged line."""
    lines = gzip.decompress(DATA_FILE.read_bytes()).split(b"\n")
    lines[len(lines) // 2] += b",extra"
    path = folder / "online_retail_ragged.csv.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines), compresslevel=1))
    cpu = time.process_time()
    export = read_export("invoices", path, {})
    return time.process_time() - cpu, export.rows, export.stats["malformed_rows"]


def pandas_once() -> tuple[float, float, int]:
    start, cpu = time.perf_counter(), time.process_time()
    frame = pd.read_csv(DATA_FILE)
    return time.perf_counter() - start, time.process_time() - cpu, len(frame)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not DATA_FILE.is_file():
        print(f"skipped: {DATA_FILE} not found (the real data sets live in ../shared/data)")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench_ingest_") as tmp:
        root = Path(tmp) / "data"
        inbox = root / "inbox" / "invoices"
        inbox.mkdir(parents=True)
        shutil.copy(DATA_FILE, inbox / DATA_FILE.name)
        landing = LandingZone(root=str(root))
        warehouse = Path(tmp) / "warehouse.duckdb"
        land_times, pandas_times, land_cpu, pandas_cpu = [], [], [], []
        read_cpu, duck_times, duck_cpu, store_cpu = [], [], [], []
        for _ in range(args.repeat):
            seconds, cpu, rows = pandas_once()
            assert rows == EXPECTED_ROWS, rows
            pandas_times.append(seconds)
            pandas_cpu.append(cpu)
            seconds, cpu, rows, reading, table = land_once(landing, warehouse)
            assert rows == EXPECTED_ROWS, rows
            land_times.append(seconds)
            land_cpu.append(cpu)
            read_cpu.append(reading)
            store_cpu.append(store_once(table, Path(tmp) / "stored.duckdb"))
            del table
            seconds, cpu, rows = duckdb_once(Path(tmp) / "duckdb_only.duckdb")
            assert rows == EXPECTED_ROWS, rows
            duck_times.append(seconds)
            duck_cpu.append(cpu)
        ragged_cpu, ragged_rows, misfits = ragged_once(Path(tmp))
        assert (ragged_rows, misfits) == (EXPECTED_ROWS, 1), (ragged_rows, misfits)
    best_land, best_pandas = min(land_times), min(pandas_times)
    ratio = best_land / best_pandas
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"file: {DATA_FILE.name} ({EXPECTED_ROWS:,} lines), best of {args.repeat}, "
          f"{os.cpu_count()} cores, load average {load}")
    print(f"  pandas.read_csv (baseline)        {best_pandas:7.3f} s")
    print(f"  land into raw.invoices (DuckDB)   {best_land:7.3f} s")
    print(f"  ratio                             {ratio:7.2f}  (target <= {TARGET_RATIO})")
    print(f"  CPU seconds (all threads)         pandas {min(pandas_cpu):.3f}, land "
          f"{min(land_cpu):.3f}, ratio {min(land_cpu) / min(pandas_cpu):.2f}")
    best_read = min(read_cpu)
    print(f"  land CPU split                    reading {best_read:.3f} "
          f"({best_read / min(pandas_cpu):.2f} of pandas), writing "
          f"{min(land_cpu) - best_read:.3f} ({(min(land_cpu) - best_read) / min(pandas_cpu):.2f})")
    print(f"  DuckDB read_csv into a table      {min(duck_times):7.3f} s, CPU "
          f"{min(duck_cpu):.3f} (ratio {min(duck_times) / best_pandas:.2f}, CPU ratio "
          f"{min(duck_cpu) / min(pandas_cpu):.2f}; no evidence, no quarantine)")
    print(f"  store the landed rows alone       CPU {min(store_cpu):.3f} (ratio "
          f"{min(store_cpu) / min(pandas_cpu):.2f}; CREATE TABLE AS from Arrow)")
    print(f"  read a copy with one ragged line  CPU {ragged_cpu:.3f} (ratio "
          f"{ragged_cpu / min(pandas_cpu):.2f}; {misfits} row marked, the rest read)")
    print(f"  all runs: land {[round(t, 3) for t in land_times]}, "
          f"pandas {[round(t, 3) for t in pandas_times]}, "
          f"duckdb {[round(t, 3) for t in duck_times]}")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
