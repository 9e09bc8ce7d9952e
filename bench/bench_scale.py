"""The whole pipeline at ``leadscore sample-data --scale X`` on both topologies, side by side.

    uv run python bench/bench_scale.py                 # --scale 10, embedded and cluster
    uv run python bench/bench_scale.py --scale 1 --topology embedded

The same sample exports (seed 7) go through each topology, each in a data folder of its own:

- **embedded** (the default configuration): ``leadscore demo`` lands every file and runs the
  main job in one process; Dagster's instance in SQLite, MLflow's store in SQLite, the DuckDB
  file with its lock file;
- **cluster** (``deploy/cluster/``, started here with databases, vhost and ports of its own
  and dropped afterwards): the files are dropped into the inbox, the inbox sensors' runs land
  them on the Celery workers, then the main job is launched as the UI does and runs on a
  worker; Dagster on PostgreSQL, MLflow over HTTP on the tracking server, the advisory lock.
  The sensors that launch runs of their own (automation, monitoring, retraining) are stopped
  for the measurement, so both topologies do the same work.

Per stage (landing, clean, features, training, the champion gate, scores, monitoring): the
seconds its steps took (summed over the stage's steps, from Dagster's step events), the CPU
seconds the executing process used meanwhile (less sensitive than wall time to other load
on the host), and its memory (peak resident set while the stage ran, and the most one step
added to what the process held when it started), sampled from /proc every 0.2 s. Per
topology: the wall time from the first file to the last landed, of the main job, and in
all. The embedded figures are the baseline the cluster's are set against; the target is the
same work in each with nothing failed (exit status 1 otherwise).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # deploy/cluster: the cluster profile, as `make cluster` runs it
BIN = Path(sys.executable).parent
STAGES = ("land", "clean", "features", "train", "gate", "scores", "monitoring")
SAMPLE_EVERY = 0.2
TERMINAL = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE,
            dg.DagsterRunStatus.CANCELED}
CLUSTER_PORTS = ("LEADSCORE_DAGSTER_UI_PORT", "LEADSCORE_MLFLOW_PORT", "LEADSCORE_API_PORT")


def stage_of(step_key: str) -> str:
    """The pipeline stage a step belongs to, from its asset key (``clean__leads`` ...)."""
    head = step_key.split("__")[0]
    if head == "raw":
        return "land"
    if head == "models":
        return "gate" if step_key.endswith("__champion") else "train"
    if head in ("features", "customer_activity_assets"):
        return "features"
    if head in ("scores", "serving"):
        return "scores"
    if head in STAGES:
        return head
    raise ValueError(f"step {step_key} belongs to no stage")


# -- memory: resident set of processes, sampled from /proc ---------------------------------


TICKS = os.sysconf("SC_CLK_TCK")


def _proc_stat(pid: str) -> tuple[int, int, float] | None:
    """(session id, resident KiB, CPU seconds so far) of a process, None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    rss = next((int(line.split()[1]) for line in status.splitlines()
                if line.startswith("VmRSS:")), 0)
    return int(fields[3]), rss, (int(fields[11]) + int(fields[12])) / TICKS


class Sampler(threading.Thread):
    """Resident set and CPU time of every process in the given sessions, every SAMPLE_EVERY
    seconds."""

    def __init__(self, sessions: set[int]):
        super().__init__(daemon=True)
        self.sessions = sessions
        self.samples: dict[int, list[tuple[float, int, float]]] = defaultdict(list)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            now = time.time()
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                stat = _proc_stat(pid)
                if stat and stat[0] in self.sessions:
                    self.samples[int(pid)].append((now, stat[1], stat[2]))
            self.done.wait(SAMPLE_EVERY)

    def window(self, pid: int, start: float, end: float) -> tuple[int, int, float] | None:
        """(KiB at the start, peak KiB, CPU seconds used) of ``pid`` between the two times."""
        series = self.samples.get(pid, [])
        inside = [s for s in series if start <= s[0] <= end]
        before = [s for s in series if s[0] <= start]
        after = [s for s in series if s[0] >= end]
        if not inside and not before:
            return None
        first = before[-1] if before else inside[0]
        last = after[0] if after else (inside or [first])[-1]
        return first[1], max(s[1] for s in [first, *inside]), last[2] - first[2]


# -- what Dagster recorded ----------------------------------------------------------------


@dataclass
class StageFigures:
    seconds: float = 0.0
    cpu: float = 0.0
    steps: int = 0
    peak_kib: int = 0
    added_kib: int = 0


@dataclass
class Result:
    topology: str
    wall: dict[str, float] = field(default_factory=dict)
    stages: dict[str, StageFigures] = field(default_factory=lambda: defaultdict(StageFigures))
    failed: list[str] = field(default_factory=list)
    runs: int = 0


def _run_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        meta = entry.dagster_event.event_specific_data.metadata or {}
        if "pid" in meta:
            return int(meta["pid"].value)
    return None


def collect(instance: dg.DagsterInstance, runs: list[dg.DagsterRun], sampler: Sampler,
            result: Result) -> None:
    kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS,
             dg.DagsterEventType.STEP_FAILURE}
    for run in runs:
        result.runs += 1
        if run.status != dg.DagsterRunStatus.SUCCESS:
            result.failed.append(f"run {run.run_id} ({run.job_name}): {run.status.value}")
        pid = _run_pid(instance, run.run_id)
        started: dict[str, float] = {}
        for entry in instance.all_logs(run.run_id, of_type=kinds):
            kind = entry.dagster_event.event_type
            if kind == dg.DagsterEventType.STEP_START:
                started[entry.step_key] = entry.timestamp
                continue
            if kind == dg.DagsterEventType.STEP_FAILURE:
                result.failed.append(f"step {entry.step_key} of run {run.run_id}")
            begin = started.pop(entry.step_key, None)
            if begin is None:
                continue
            figures = result.stages[stage_of(entry.step_key)]
            figures.seconds += entry.timestamp - begin
            figures.steps += 1
            memory = sampler.window(pid, begin, entry.timestamp) if pid else None
            if memory:
                figures.peak_kib = max(figures.peak_kib, memory[1])
                figures.added_kib = max(figures.added_kib, memory[1] - memory[0])
                figures.cpu += memory[2]


# -- the topologies -----------------------------------------------------------------------


def sample_exports(scale: float, out: Path) -> list[Path]:
    subprocess.run([str(BIN / "leadscore"), "sample-data", "--inbox", str(out), "--scale",
                    str(scale), "--seed", "7"], check=True, capture_output=True)
    return sorted(p for p in out.glob("*/*") if p.is_file())


def _clean_env(data: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LEADSCORE_", "DAGSTER_", "MLFLOW_"))}
    return {**env, "LEADSCORE_DATA_DIR": str(data), "DAGSTER_HOME": str(home)}


def run_embedded(files: list[Path], work: Path) -> Result:
    result = Result("embedded")
    data, home = work / "data", work / "dagster_home"
    home.mkdir(parents=True)
    for path in files:  # the demo lands what is in the inbox
        target = data / "inbox" / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    start = time.time()
    proc = subprocess.Popen([str(BIN / "leadscore"), "demo"], cwd=ROOT,
                            env=_clean_env(data, home), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    sampler = Sampler({proc.pid})
    sampler.start()
    output = proc.communicate()[0].decode(errors="replace")
    end = time.time()
    sampler.done.set()
    sampler.join()
    if proc.returncode != 0:
        result.failed.append(f"leadscore demo exited {proc.returncode}: {output[-2000:]}")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        collect(instance, runs, sampler, result)
        main = [r for r in runs if r.job_name == "main"]
        landing = [r for r in runs if r.job_name != "main"]
        result.wall["landing"] = _span(instance, landing, since=start)
        result.wall["main job"] = _span(instance, main)
    result.wall["total"] = end - start
    return result


def _span(instance: dg.DagsterInstance, runs: list[dg.DagsterRun],
          since: float | None = None) -> float:
    """From ``since`` (else the first run's creation) to the last run's end."""
    if not runs:
        return 0.0
    records = instance.get_run_records(dg.RunsFilter(run_ids=[r.run_id for r in runs]))
    begin = since if since is not None else min(r.create_timestamp.timestamp()
                                                for r in records)
    return max((r.end_time or begin) for r in records) - begin


def run_cluster(files: list[Path], work: Path, ports: str | None) -> Result:
    from deploy.cluster import cluster

    result = Result("cluster")
    tag = f"leadscore_bench_{uuid.uuid4().hex[:8]}"
    data = work / "data"
    data.mkdir(parents=True)
    started = time.time()
    # stopped and dropped afterwards, also when the benchmark is killed
    with cluster.isolated_cluster(tag, data, CLUSTER_PORTS, ports) as env:
        result.wall["cluster up"] = time.time() - started
        workers = [cluster.pid_of(env, n) for n in cluster.commands(env)
                   if n.startswith("worker-")]
        sampler = Sampler({p for p in workers if p})
        sampler.start()
        with cluster.sensors_stopped(env), dg.DagsterInstance.get() as instance:
            start = time.time()
            for path in files:  # written aside, then renamed: the sensors see whole files
                inbox = data / "inbox" / path.parent.name
                inbox.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, inbox / f".{path.name}.part")
            for path in files:
                inbox = data / "inbox" / path.parent.name
                os.rename(inbox / f".{path.name}.part", inbox / path.name)
            names = {p.name for p in files}

            def landed():
                runs = [r for r in instance.get_runs()
                        if r.tags.get("leadscore/file") in names]
                done = len(runs) == len(names) and all(r.status in TERMINAL for r in runs)
                return runs if done else None

            landing = cluster.wait_for(landed, "landing runs", timeout=3600)
            result.wall["landing"] = _span(instance, landing, since=start)
            run_id = cluster.launch(env, job="main")
            main = cluster.wait_for(
                lambda: (r := instance.get_run_by_id(run_id)).status in TERMINAL and r,
                "the main job", timeout=7200)
            result.wall["main job"] = _span(instance, [main])
            result.wall["total"] = time.time() - start
            sampler.done.set()
            sampler.join()
            collect(instance, [*landing, main], sampler, result)
    return result


# -- the table ----------------------------------------------------------------------------


def table(results: list[Result]) -> str:
    """Seconds, CPU seconds and memory per stage, one column group per topology."""
    def mib(kib: int) -> str:
        return f"{kib / 1024:,.0f}" if kib else "-"

    head = f"{'':<12}" + "".join(f"{r.topology:^36}" for r in results)
    sub = f"{'stage':<12}" + f"{'s':>8}{'CPU s':>8}{'peak MiB':>10}{'+MiB':>10}" * len(results)
    lines = [head, sub, "-" * len(sub)]
    for stage in STAGES:
        row = f"{stage:<12}"
        for r in results:
            f = r.stages[stage]
            row += f"{f.seconds:>8.1f}{f.cpu:>8.1f}{mib(f.peak_kib):>10}{mib(f.added_kib):>10}"
        lines.append(row)
    lines.append("-" * len(sub))
    for what in ("landing", "main job", "total", "cluster up"):
        if any(what in r.wall for r in results):
            lines.append(f"{what + ' (wall)':<18}" + "".join(
                f"{r.wall[what]:>8.1f}{'':28}" if what in r.wall else f"{'-':>8}{'':28}"
                for r in results).rstrip())
    if len(results) == 2 and results[0].wall.get("total"):
        ratio = results[1].wall["total"] / results[0].wall["total"]
        lines.append(f"cluster / embedded, total wall: {ratio:.2f}x (baseline: embedded)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--topology", choices=["both", "embedded", "cluster"], default="both")
    parser.add_argument("--ports", default=os.environ.get("LEADSCORE_TEST_PORTS"),
                        help="first-last: the cluster's ports from this range (default: any "
                             "free ports; LEADSCORE_TEST_PORTS)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="leadscore_bench_scale_"))
    try:
        files = sample_exports(args.scale, work / "samples")
        sizes = sum(p.stat().st_size for p in files)
        print(f"sample data --scale {args.scale:g}: {len(files)} files, {sizes / 2**20:.1f} MiB; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        results = []
        if args.topology in ("both", "embedded"):
            results.append(run_embedded(files, work / "embedded"))
        if args.topology in ("both", "cluster"):
            results.append(run_cluster(files, work / "cluster", args.ports))
        print(table(results))
        print(f"load average at the end (1, 5, 15 min): "
              f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
        failed = [f"{r.topology}: {f}" for r in results for f in r.failed]
        for line in failed:
            print("FAILED", line[:500])
        return 1 if failed else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
