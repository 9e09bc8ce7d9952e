"""The prediction log: nothing lost on close or rotation, nothing read while being written."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from leadscore_assets.ingest.readers import read_export
from leadscore_core.predlog import OPEN_SUFFIX, PredictionLogWriter, seal_abandoned
from tests.support.predlog import read_entries, sealed_files


def _all_entries(directory: Path) -> list[dict]:
    return [e for path in sealed_files(directory) for e in read_entries(path)]


def test_entries_survive_close(tmp_path):
    writer = PredictionLogWriter(tmp_path, flush_interval=60)  # only close() writes
    for i in range(1_000):
        writer.log("lead_conversion", 3, "/v1/leads/score",
                   {"email": f"x{i}@example.com", "utm_source": "google"},
                   {"probability": np.float64(i / 1000), "tier": "B"})
    writer.close()

    entries = _all_entries(tmp_path)
    assert [e["inputs"]["email"] for e in entries] == [f"x{i}@example.com" for i in range(1_000)]
    assert entries[999]["outputs"] == {"probability": 0.999, "tier": "B"}
    assert {e["model"] for e in entries} == {"lead_conversion"}
    assert {e["version"] for e in entries} == {"3"}
    assert len({e["id"] for e in entries}) == 1_000
    assert not list(tmp_path.glob(f"*{OPEN_SUFFIX}"))


def test_a_request_batch_keeps_its_rows_and_struct_inputs(tmp_path):
    """``log_many`` queues a request as one item; each row is its own entry, an input given
    as a msgspec Struct is written as its object (unset fields left out)."""
    import msgspec

    class Lead(msgspec.Struct, kw_only=True, omit_defaults=True):
        id: str | None = None
        utm_source: str | None = None

    writer = PredictionLogWriter(tmp_path)
    writer.log_many("lead_conversion", "2", "/v1/leads/score",
                    [(Lead(id=f"L{i}", utm_source="google" if i % 2 else None),
                      {"probability": i / 10}) for i in range(5)])
    writer.close()
    entries = _all_entries(tmp_path)
    assert [e["inputs"] for e in entries] == [
        {"id": "L0"}, {"id": "L1", "utm_source": "google"}, {"id": "L2"},
        {"id": "L3", "utm_source": "google"}, {"id": "L4"}]
    assert len({e["id"] for e in entries}) == 5 and len({e["time"] for e in entries}) == 1
    assert writer.written == 5


def test_a_writer_never_overwrites_a_file_another_writer_has_sealed(tmp_path):
    # The second writer opens its file only when it first writes (here: at close), after the
    # first writer's file, named in the same second, was sealed and renamed.
    first = PredictionLogWriter(tmp_path, flush_interval=60)
    second = PredictionLogWriter(tmp_path, flush_interval=60)
    first.log("plan", "1", "/v1/leads/plan", {"n": 1}, {"plan": "MVP"})
    first.close()
    second.log("plan", "1", "/v1/leads/plan", {"n": 2}, {"plan": "Now"})
    second.close()
    assert sorted(e["inputs"]["n"] for e in _all_entries(tmp_path)) == [1, 2]
    assert len(sealed_files(tmp_path)) == 2


def test_two_writers_of_one_process_never_share_a_file(tmp_path):
    first, second = PredictionLogWriter(tmp_path), PredictionLogWriter(tmp_path)
    for i in range(50):
        first.log("plan", "1", "/v1/leads/plan", {"n": i}, {"plan": "MVP"})
        second.log("plan", "1", "/v1/leads/plan", {"n": 100 + i}, {"plan": "Now"})
    first.close()
    second.close()
    entries = _all_entries(tmp_path)
    assert sorted(e["inputs"]["n"] for e in entries) == [*range(50), *range(100, 150)]
    assert len(sealed_files(tmp_path)) == 2
    assert len({e["id"] for e in entries}) == 100


def test_nothing_is_read_while_a_file_is_open(tmp_path):
    writer = PredictionLogWriter(tmp_path)
    writer.log("plan", "1", "/v1/plans/recommend", {"business_type": "cafe"}, {"plan": "MVP"})
    writer.flush()
    open_path = writer.open_path
    assert open_path is not None and open_path.name.endswith(OPEN_SUFFIX)
    assert json.loads(open_path.read_text())["outputs"] == {"plan": "MVP"}  # on disk already
    assert sealed_files(tmp_path) == []
    writer.close()
    assert [p.name for p in sealed_files(tmp_path)] == [
        open_path.name[: -len(OPEN_SUFFIX)] + ".jsonl"]


def test_rotation_by_size_keeps_every_entry_once(tmp_path):
    writer = PredictionLogWriter(tmp_path, max_bytes=2_000, max_batch=10, flush_interval=0.01)
    for i in range(300):
        writer.log("activity_churn", "2", "/v1/customers/churn", {"customer_id": str(i)},
                   {"probability": 0.5})
        if i % 50 == 49:
            writer.flush()
    writer.flush()
    rotated = sealed_files(tmp_path)
    assert len(rotated) >= 5  # rotated while the writer is still running
    writer.close()
    files = sealed_files(tmp_path)
    assert set(rotated) <= set(files)
    assert not list(tmp_path.glob(f"*{OPEN_SUFFIX}"))
    assert len({f.name for f in files}) == len(files)
    ids = [e["inputs"]["customer_id"] for e in _all_entries(tmp_path)]
    assert ids == [str(i) for i in range(300)]


def test_rotation_by_age_seals_an_idle_file(tmp_path):
    writer = PredictionLogWriter(tmp_path, max_age_seconds=0.05, flush_interval=0.01)
    writer.log("plan", "1", "/v1/plans/recommend", {}, {"plan": "Now"})
    writer.flush()
    deadline = time.monotonic() + 5
    while not sealed_files(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(sealed_files(tmp_path)) == 1  # no further request needed to seal it
    writer.close()


def _worker(directory: str, n: int) -> None:
    writer = PredictionLogWriter(directory)
    for i in range(n):
        writer.log("lead_conversion", "1", "/v1/leads/score", {"i": i, "pid": os.getpid()}, {})
    writer.close()


def test_several_processes_write_their_own_files(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), 200)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    entries = _all_entries(tmp_path)
    assert len(entries) == 400
    by_pid: dict[int, list[int]] = {}
    for e in entries:
        by_pid.setdefault(e["inputs"]["pid"], []).append(e["inputs"]["i"])
    assert sorted(by_pid) == sorted(p.pid for p in procs)
    assert all(sorted(v) == list(range(200)) for v in by_pid.values())
    for path in sealed_files(tmp_path):
        pid = json.loads(path.read_text().splitlines()[0])["inputs"]["pid"]
        assert f"-{pid}-" in path.name


def test_bad_lines_keep_their_place_with_line_and_reason(tmp_path):
    good = {"time": "2026-03-01T10:00:00+00:00", "model": "plan", "version": "1",
            "endpoint": "/v1/plans/recommend", "inputs": {}, "outputs": {"plan": "MVP"}}
    path = tmp_path / "predictions-20260301T100000-h-1-0000.jsonl"
    path.write_text("\n".join([
        json.dumps(good),
        "{not json",
        json.dumps({k: v for k, v in good.items() if k != "model"}),
        json.dumps({**good, "inputs": [1, 2]}),
        json.dumps({**good, "time": "yesterday"}),
        json.dumps(good),
    ]) + "\n")
    table = read_export("predictions", path, {}).table.to_pylist()
    assert [r["_row_number"] for r in table] == [1, 2, 3, 4, 5, 6]
    good_rows = [r for r in table if r["_malformed"] is None]
    assert [r["_row_number"] for r in good_rows] == [1, 6]
    assert good_rows[0]["model"] == "plan" and json.loads(good_rows[0]["outputs"]) == {
        "plan": "MVP"}
    bad = [json.loads(r["_malformed"]) for r in table if r["_malformed"] is not None]
    assert [b["line"] for b in bad] == [2, 3, 4, 5]
    assert "invalid JSON" in bad[0]["reason"] and bad[0]["rule"] == "invalid_json"
    assert "model" in bad[1]["reason"]
    assert "inputs" in bad[2]["reason"]
    assert "time" in bad[3]["reason"]


def test_abandoned_open_file_is_sealed_into_the_inbox(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    import socket

    host = socket.gethostname().split(".")[0].replace("-", "_")
    orphan = tmp_path / f"predictions-20260301T100000-{host}-{dead_pid}-0000{OPEN_SUFFIX}"
    orphan.write_text('{"x": 1}\n')
    mine = tmp_path / f"predictions-20260301T100000-{host}-{os.getpid()}-0000{OPEN_SUFFIX}"
    mine.write_text('{"x": 2}\n')
    old = time.time() - 3_600
    for p in (orphan, mine):
        os.utime(p, (old, old))

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    sealed = seal_abandoned(tmp_path, min_age_seconds=60, inbox=inbox)
    assert sealed == [inbox / (orphan.name[: -len(OPEN_SUFFIX)] + ".jsonl")]
    assert sealed[0].read_text() == '{"x": 1}\n' and not orphan.exists()
    assert mine.exists()  # its writer (this process) is alive


def test_sealed_files_are_renamed_into_the_inbox(tmp_path):
    spool, inbox = tmp_path / "predictions", tmp_path / "inbox" / "predictions"
    writer = PredictionLogWriter(spool, inbox=inbox, flush_interval=60)
    writer.log("plan", "2", "/v1/leads/plan", {"id": "L-1"}, {"plan": "MVP"})
    writer.flush()
    assert sealed_files(inbox) == [] and writer.open_path.parent == spool
    writer.close()
    [sealed] = sealed_files(inbox)
    assert [e["inputs"] for e in read_entries(sealed)] == [{"id": "L-1"}]
    assert list(spool.iterdir()) == []  # nothing left behind, nothing sealed beside
