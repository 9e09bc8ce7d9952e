"""Features and all four reference models on the public data sets: time per model.

Prints, per model, the time to build its features, to select and fit LightGBM (CV over the
grid), to fit the logistic-regression baseline, and the held-out ROC-AUC of both, then the
total against the 90-second budget.

    uv run python bench/bench_models.py [--data ../shared/data] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BUDGET_SECONDS = 90.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--threads", type=int, default=1, help="LightGBM threads per model")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"data sets not found at {args.data}", file=sys.stderr)
        return 2

    started = time.perf_counter()
    from leadscore_assets.models.quality import run_quality
    from leadscore_assets.models.training import TrainConfig

    imported = time.perf_counter() - started
    config = replace(TrainConfig(), num_threads=args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}; LightGBM threads {args.threads}")
    print(f"imports {imported:.1f}s")
    header = (f"{'model':<24} {'rows':>7} {'features s':>10} {'LightGBM s':>10} "
              f"{'baseline s':>10} {'total s':>8} {'AUC':>7} {'base AUC':>8}")
    print(header)
    print("-" * len(header))
    results = []
    for name in ("telco_snapshot_churn", "xeducation_conversion", "codepro_conversion",
                 "retail_activity_churn"):
        (r,) = run_quality(args.data, [name], config)
        t = r.trained.timings
        results.append(r)
        print(f"{name:<24} {r.trained.row_counts['rows']:>7,} {r.feature_seconds:>10.1f} "
              f"{t['select_and_fit_s']:>10.1f} {t['baseline_s']:>10.1f} "
              f"{r.feature_seconds + r.train_seconds:>8.1f} {r.roc_auc:>7.4f} "
              f"{r.baseline_roc_auc:>8.4f}", flush=True)
    total = time.perf_counter() - started
    work = sum(r.feature_seconds + r.train_seconds for r in results)
    print("-" * len(header))
    print(f"features + training: {work:.1f}s; with imports: {total:.1f}s; "
          f"budget {BUDGET_SECONDS:.0f}s -> {'within' if total <= BUDGET_SECONDS else 'OVER'}")
    per_request(results[0])
    return 0


def per_request(result, n: int = 2000) -> None:
    """One-row scoring: the request path (records) against a one-row DataFrame."""
    import pandas as pd

    bundle = result.trained.bundle
    rows = result.trained.holdout[bundle.feature_names].head(n)
    records = [{k: (None if pd.isna(v) else v) for k, v in r.items()}
               for r in rows.to_dict("records")]
    timings = {}
    for label, call in (
            ("records -> encode -> predict", lambda r: bundle.predict_records([r])),
            ("DataFrame -> encode -> predict", lambda r: bundle.predict_frame(
                pd.DataFrame([r])))):
        t0 = time.perf_counter()
        for record in records:
            call(record)
        timings[label] = (time.perf_counter() - t0) / len(records) * 1e6
    print(f"one-row scoring ({result.name}, {len(records)} rows):")
    for label, micros in timings.items():
        print(f"  {label:<32} {micros:>9.0f} us/row")


if __name__ == "__main__":
    raise SystemExit(main())
