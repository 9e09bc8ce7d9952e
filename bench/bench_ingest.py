"""Landing the full Online Retail file vs a bare ``pandas.read_csv`` of it, side by side.

Lands ``../shared/data/online_retail_uci.csv.gz`` (541,909 lines) into a temporary DuckDB
file through the raw asset's own steps (hash, ``read_export``, ``write_raw``: invoices
need no source profile) and reads the
same file with ``pandas.read_csv``, alternating the two so both see the same machine load.
Prints the best of ``--repeat`` runs of each and the ratio (target: at most 1.5), and the
CPU seconds of each: on a loaded machine the wall-clock ratio drifts towards the CPU ratio,
because the landing's parallel parsing no longer gets a free core.

    uv run python bench/bench_ingest.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd

from leadscore_assets.ingest.assets import write_raw
from leadscore_assets.ingest.landing import LandingZone, partition_key
from leadscore_assets.ingest.readers import read_export

PROJECT = Path(__file__).resolve().parents[1]
DATA_FILE = PROJECT.parent / "shared" / "data" / "online_retail_uci.csv.gz"
EXPECTED_ROWS = 541_909
TARGET_RATIO = 1.5


def land_once(landing: LandingZone, warehouse: Path) -> tuple[float, float, int]:
    warehouse.unlink(missing_ok=True)
    name = DATA_FILE.name
    start, cpu = time.perf_counter(), time.process_time()
    sha = landing.sha256("invoices", name)
    export = read_export("invoices", landing.local_path("invoices", name), {})
    with duckdb.connect(str(warehouse)) as conn:
        write_raw(conn, "invoices", export, partition=partition_key(name, sha),
                  file_name=name, sha256=sha)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        rows = conn.execute("SELECT count(*) FROM raw.invoices").fetchone()[0]
    return seconds, cpu, rows


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
        for _ in range(args.repeat):
            seconds, cpu, rows = pandas_once()
            assert rows == EXPECTED_ROWS, rows
            pandas_times.append(seconds)
            pandas_cpu.append(cpu)
            seconds, cpu, rows = land_once(landing, warehouse)
            assert rows == EXPECTED_ROWS, rows
            land_times.append(seconds)
            land_cpu.append(cpu)
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
    print(f"  all runs: land {[round(t, 3) for t in land_times]}, "
          f"pandas {[round(t, 3) for t in pandas_times]}")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
