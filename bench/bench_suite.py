"""The test suite's wall time against the suite as it was at a base commit.

Target: the tests that existed at the base commit (``c18065f`` by default: 292 tests, run by
``make test`` of that time, one process) run in at most 60% of that commit's wall time, so
that new tests have room.

Both are measured here, one after the other on the same machine:

- *then*: the base commit checked out in a temporary worktree beside this one (so
  ``../shared/data`` resolves the same), with its own locked environment (``uv sync
  --frozen``), run with that commit's ``make test`` command (``pytest``);
- *now*: the test files that existed at the base commit, as they are in this checkout (every
  test they hold now counts, the new ones too), run with today's ``make test`` command
  (``pytest -n auto --dist loadgroup``).

    uv run python bench/bench_suite.py [--base c18065f] [--then-seconds S] [--then-only]

``--then-seconds`` reuses a measurement of the base suite instead of running it again.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.60
THEN_COMMAND = ["uv", "run", "--frozen", "pytest", "-q", "-p", "no:cacheprovider"]
NOW_COMMAND = ["uv", "run", "--frozen", "pytest", "-q", "-p", "no:cacheprovider",
               "-n", "auto", "--dist", "loadgroup"]


def test_env() -> dict[str, str]:
    """As ``make test`` runs the tests: no Dagster home, no data folder of the user's."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DAGSTER_HOME", "LEADSCORE_DATA_DIR", "VIRTUAL_ENV")}
    env.pop("UV_PROJECT_ENVIRONMENT", None)
    return env


def run_suite(command: list[str], cwd: Path) -> tuple[float, str]:
    """Wall seconds and pytest's summary, with the machine's load average before and after
    (on a shared machine the figure means little without it)."""
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=test_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    summary = (f"{last_summary(done.stdout)}; load average {load_before:.1f} before, "
               f"{os.getloadavg()[0]:.1f} after")
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-2000:], sep="\n", file=sys.stderr)
        print(f"warning: {' '.join(command)} exited {done.returncode} in {cwd}", file=sys.stderr)
    return seconds, summary


def last_summary(output: str) -> str:
    """pytest's closing line: ``290 passed, 2 skipped in 84.1s``."""
    lines = [line.strip("= ") for line in output.splitlines()
             if re.search(r"\b(passed|failed|error)", line)]
    return lines[-1] if lines else "no summary"


def base_test_files(base: str) -> list[str]:
    listed = subprocess.run(["git", "ls-tree", "-r", "--name-only", base, "tests/"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout.split()
    return [p for p in listed
            if re.fullmatch(r"tests/test_[^/]*\.py", p) and (ROOT / p).exists()]


def measure_then(base: str) -> tuple[float, str]:
    tree = ROOT.parent / f".suite-{base[:10]}"
    if tree.exists():
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT)
        shutil.rmtree(tree, ignore_errors=True)
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), base], cwd=ROOT,
                   check=True, capture_output=True)
    try:
        subprocess.run(["uv", "sync", "--frozen", "--quiet"], cwd=tree, env=test_env(),
                       check=True)
        return run_suite(THEN_COMMAND, tree)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT,
                       capture_output=True)
        shutil.rmtree(tree, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="c18065f")
    parser.add_argument("--then-seconds", type=float, default=None)
    parser.add_argument("--then-only", action="store_true",
                        help="measure the base suite only (print its figure for --then-seconds)")
    args = parser.parse_args()

    files = base_test_files(args.base)
    print(f"base {args.base}: {len(files)} test files, on {os.cpu_count()} cores")
    if args.then_seconds is None:
        then, then_summary = measure_then(args.base)
    else:
        then, then_summary = args.then_seconds, "given"
    if args.then_only:
        print(f"then ({args.base}, {' '.join(THEN_COMMAND[3:])}): {then:7.1f} s  "
              f"({then_summary})")
        return
    now, now_summary = run_suite([*NOW_COMMAND, *files], ROOT)

    print(f"then ({args.base}, {' '.join(THEN_COMMAND[3:])}): {then:7.1f} s  ({then_summary})")
    print(f"now  (same files, {' '.join(NOW_COMMAND[3:])}): {now:7.1f} s  ({now_summary})")
    ratio = now / then
    verdict = "within" if ratio <= TARGET else "MISSES"
    print(f"now / then: {ratio:.0%} (target at most {TARGET:.0%}: {verdict})")
    if ratio > TARGET:
        sys.exit(1)


if __name__ == "__main__":
    main()
