"""A drift report over 100,000 current rows x 30 features against a 100,000-row reference.

Half the features are numeric, half categorical (up to 40 categories, 5% missing); the
current window has a third of the features shifted. Prints, best of ``--repeat`` runs:

- the whole report: every test, PSI, missing rates, histograms, verdict, HTML + JSON written
  (target: under 10 s);
- as a baseline, the per-feature scipy calls alone on ready-made numpy arrays (the floor a
  report cannot beat).

    uv run python bench/bench_drift.py [--rows 100000] [--features 30] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon

from leadscore_assets.monitoring.drift import detect_drift
from leadscore_assets.monitoring.report import write_report

TARGET_SECONDS = 10.0


def make_frame(rows: int, features: int, rng: np.random.Generator, shift: bool) -> pd.DataFrame:
    data: dict[str, object] = {}
    for i in range(features):
        moved = shift and i % 3 == 0
        if i % 2 == 0:
            values = rng.lognormal(3 + (0.2 if moved else 0.0), 1.0, rows)
            values[rng.random(rows) < 0.05] = np.nan
            data[f"num_{i}"] = values
        else:
            k = 5 + i
            p = rng.dirichlet(np.ones(k) * (0.5 if moved else 5.0))
            cats = np.array([f"cat_{i}_{j}" for j in range(k)], dtype=object)
            col = pd.Series(cats[rng.choice(k, rows, p=p)], dtype="string")
            col[rng.random(rows) < 0.05] = pd.NA
            data[f"cat_{i}"] = col
    return pd.DataFrame(data)


def scipy_only(reference: pd.DataFrame, current: pd.DataFrame) -> None:
    arrays = []
    for col in reference.columns:
        if col.startswith("num_"):
            r = reference[col].to_numpy(float)
            c = current[col].to_numpy(float)
            arrays.append(("num", r[~np.isnan(r)], c[~np.isnan(c)]))
        else:
            keys = sorted(set(reference[col].dropna()) | set(current[col].dropna()))
            r = reference[col].value_counts().reindex(keys, fill_value=0).to_numpy(float)
            c = current[col].value_counts().reindex(keys, fill_value=0).to_numpy(float)
            arrays.append(("cat", r / r.sum(), c / c.sum()))
    start = time.perf_counter()
    for kind, r, c in arrays:
        if kind == "num":
            stats.wasserstein_distance(r, c) / np.std(r)
        else:
            jensenshannon(r, c)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(42)
    reference = make_frame(args.rows, args.features, rng, shift=False)
    current = make_frame(args.rows, args.features, rng, shift=True)
    importance = {c: float(len(reference.columns) - i) for i, c in enumerate(reference.columns)}

    report_times, scipy_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            start = time.perf_counter()
            result = detect_drift(reference, current, importance=importance)
            html_path, _ = write_report(result, Path(tmp), "bench", "bench drift report")
            report_times.append(time.perf_counter() - start)
            scipy_times.append(scipy_only(reference, current))
        html_kb = html_path.stat().st_size / 1024

    best, floor = min(report_times), min(scipy_times)
    print(f"drift report: {args.rows:,} current x {args.features} features "
          f"vs {args.rows:,} reference rows (best of {args.repeat})")
    print(f"  full report (tests, PSI, missing, histograms, HTML+JSON) {best:8.3f} s   "
          f"target < {TARGET_SECONDS:.0f} s   {'OK' if best < TARGET_SECONDS else 'SLOW'}")
    print(f"  baseline: scipy calls alone                              {floor:8.3f} s   "
          f"report / scipy = {best / floor:.1f}x")
    print(f"  verdict: {'drift' if result.dataset_drifted else 'no drift'}, "
          f"{len(result.drifted_features)} of {len(result.features)} features drifted; "
          f"HTML {html_kb:.0f} KiB")


if __name__ == "__main__":
    main()
