"""Inbox sensors evaluated tick by tick against real folders (and one in-memory landing zone)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster_duckdb import DuckDBResource

from leadscore_assets.alerts import AlertChannel
from leadscore_assets.ingest.assets import RAW_ASSETS
from leadscore_assets.ingest.landing import LandedFile, LandingZone, partition_key
from leadscore_assets.ingest.ledger import Ledger
from leadscore_assets.ingest.sensors import INBOX_SENSORS, InboxCursor, evaluate_inbox

LEADS_CSV = (
    "submitted_at,email,name,company,business_type,business_size,utm_source\n"
    "2024-01-02 10:00:00,ann@example.com,Ann,Acme,Dental,1-10,google\n"
)
SETTLE = 5.0
LONG_AGO = time.time() - 3600


@pytest.fixture
def landing(tmp_path: Path) -> LandingZone:
    (tmp_path / "data" / "inbox" / "leads").mkdir(parents=True)
    return LandingZone(root=str(tmp_path / "data"), settle_seconds=SETTLE)


def drop(landing: LandingZone, name: str, text: str, *, mtime: float | None = LONG_AGO) -> Path:
    path = landing.inbox("leads") / name
    path.write_text(text)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def tick(landing: LandingZone, cursor: str | None = None,
         instance: dg.DagsterInstance | None = None) -> dg.SensorResult:
    with dg.build_sensor_context(
        cursor=cursor, resources={"landing": landing},
        instance=instance or dg.DagsterInstance.ephemeral(),
    ) as context:
        result = INBOX_SENSORS["leads"](context)
    assert isinstance(result, dg.SensorResult)
    return result


def added_partitions(result: dg.SensorResult) -> list[str]:
    return [key for request in result.dynamic_partitions_requests or []
            for key in request.partition_keys]


def test_new_file_requests_one_run_and_adds_its_partition(landing: LandingZone) -> None:
    path = drop(landing, "leads_jan.csv", LEADS_CSV)
    result = tick(landing)

    import hashlib
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    key = f"leads_jan.csv@{sha[:10]}"
    assert added_partitions(result) == [key]
    assert result.dynamic_partitions_requests[0].partitions_def_name == "raw_leads_files"
    assert len(result.run_requests) == 1
    request = result.run_requests[0]
    assert request.partition_key == key
    assert request.run_key == f"leads:{sha}"
    assert request.tags["leadscore/file"] == "leads_jan.csv"
    assert json.loads(result.cursor)["ledger"] == {sha[:32]: key}


def test_same_file_on_the_next_tick_requests_nothing(landing: LandingZone) -> None:
    drop(landing, "leads_jan.csv", LEADS_CSV)
    first = tick(landing)
    second = tick(landing, first.cursor)
    assert second.run_requests == [] or second.run_requests is None
    assert added_partitions(second) == []
    assert "no new files" in str(second.skip_reason)


def test_copy_under_another_name_is_reported_as_a_duplicate(landing: LandingZone) -> None:
    drop(landing, "leads_jan.csv", LEADS_CSV)
    first = tick(landing)
    drop(landing, "leads_jan (copy).csv", LEADS_CSV)
    second = tick(landing, first.cursor)

    assert not second.run_requests
    assert added_partitions(second) == []
    [observation] = second.asset_events
    assert observation.asset_key == dg.AssetKey(["raw", "leads"])
    assert observation.metadata["duplicate_file"].value == "leads_jan (copy).csv"
    assert observation.metadata["duplicate_of"].value == added_partitions(first)[0]
    # reported once, not on every later tick
    assert tick(landing, second.cursor).asset_events == []


def test_two_identical_new_files_in_one_tick_land_once(landing: LandingZone) -> None:
    drop(landing, "a.csv", LEADS_CSV, mtime=LONG_AGO)
    drop(landing, "b.csv", LEADS_CSV, mtime=LONG_AGO + 1)
    result = tick(landing)
    assert [r.tags["leadscore/file"] for r in result.run_requests] == ["a.csv"]
    assert [e.metadata["duplicate_file"].value for e in result.asset_events] == ["b.csv"]


def test_growing_file_waits_until_it_is_stable(landing: LandingZone) -> None:
    path = drop(landing, "big.csv", LEADS_CSV, mtime=None)  # mtime: just now
    result = tick(landing)
    assert not result.run_requests
    assert "big.csv" in str(result.skip_reason)

    with path.open("a") as handle:  # still being written, and now old enough
        handle.write("2024-01-03 11:00:00,bob@example.com,Bob,Beta,Legal,11-50,bing\n")
    os.utime(path, (LONG_AGO, LONG_AGO))
    result = tick(landing, result.cursor)
    assert not result.run_requests, "size and mtime changed since the previous tick"

    result = tick(landing, result.cursor)  # unchanged for a whole tick: complete
    assert [r.tags["leadscore/file"] for r in result.run_requests] == ["big.csv"]
    assert added_partitions(result) == [partition_key("big.csv", landing.sha256("leads",
                                                                                "big.csv"))]


def test_restart_with_the_stored_cursor_requests_nothing(landing: LandingZone) -> None:
    drop(landing, "leads_jan.csv", LEADS_CSV)
    stored = tick(landing).cursor
    # a new daemon: new instance, new context, only the persisted cursor string survives
    result = tick(landing, stored, instance=dg.DagsterInstance.ephemeral())
    assert not result.run_requests
    assert added_partitions(result) == []
    assert result.asset_events == []


def test_new_content_under_a_known_name_is_a_new_partition(landing: LandingZone) -> None:
    drop(landing, "leads.csv", LEADS_CSV)
    first = tick(landing)
    drop(landing, "leads.csv", LEADS_CSV + "2024-02-01 09:00:00,cy@example.com,Cy,C,Legal,1-10,x\n",
         mtime=LONG_AGO + 10)
    second = tick(landing, first.cursor)
    assert len(second.run_requests) == 1
    assert added_partitions(second) != added_partitions(first)
    assert len(json.loads(second.cursor)["ledger"]) == 2


def test_sensor_tick_is_accepted_by_dagster(landing: LandingZone) -> None:
    """The full tick machinery (not only the function) accepts the partitions and requests."""
    drop(landing, "leads_jan.csv", LEADS_CSV)
    defs = dg.Definitions(assets=[RAW_ASSETS["leads"]], sensors=[INBOX_SENSORS["leads"]],
                          resources={"landing": landing,
                                     "warehouse": DuckDBResource(database=":memory:"),
                                     "alerts": AlertChannel(log_path=f"{landing.root}/a.jsonl")})
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(resources={"landing": landing}, definitions=defs,
                                          instance_ref=instance.get_ref())
        # the daemon evaluates ticks inside this context; the partition added by the same
        # result must resolve
        with dg.partition_loading_context(dynamic_partitions_store=instance):
            data = INBOX_SENSORS["leads"].evaluate_tick(context)
    assert len(data.run_requests) == 1
    assert data.run_requests[0].partition_key.startswith("leads_jan.csv@")
    assert len(data.dynamic_partitions_requests) == 1


class MemoryLanding:
    """The landing-zone interface the sensor uses, over files held in memory."""

    def __init__(self, files: dict[str, tuple[bytes, float]], ledger: Path,
                 settle_seconds: float = SETTLE):
        self.files = files
        self.settle_seconds = settle_seconds
        self._ledger = Ledger(ledger)

    def ledger(self) -> Ledger:
        return self._ledger

    def list_files(self, source: str) -> list[LandedFile]:
        return [LandedFile(name, len(data), mtime) for name, (data, mtime) in self.files.items()]

    def sha256(self, source: str, name: str) -> str:
        return hashlib.sha256(self.files[name][0]).hexdigest()


def test_sensor_logic_runs_against_any_landing_zone(tmp_path: Path) -> None:
    store = MemoryLanding({"one.csv": (b"x,y\n1,2\n", LONG_AGO)}, tmp_path / "ledger.sqlite")
    context = dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral())
    first = evaluate_inbox(context, "leads", store)  # type: ignore[arg-type]
    assert [r.tags["leadscore/file"] for r in first.run_requests] == ["one.csv"]

    store.files["two.csv"] = (b"x,y\n1,2\n", LONG_AGO)
    context = dg.build_sensor_context(cursor=first.cursor,
                                      instance=dg.DagsterInstance.ephemeral())
    second = evaluate_inbox(context, "leads", store)  # type: ignore[arg-type]
    assert not second.run_requests
    assert second.asset_events[0].metadata["duplicate_of"].value == added_partitions(first)[0]


def test_cursor_stays_compact_and_forgets_removed_files(landing: LandingZone) -> None:
    for i in range(20):
        drop(landing, f"f{i:02d}.csv", LEADS_CSV + f"x{i}\n")
    result = tick(landing)
    assert len(result.run_requests) == 20
    for path in landing.inbox("leads").iterdir():
        path.unlink()
    cursor = InboxCursor.load(tick(landing, result.cursor).cursor)
    assert cursor.seen == {} and cursor.pending == {}
    assert len(cursor.ledger) == 20  # the ledger outlives the files: same bytes never land twice
    assert len(cursor.dump()) < 20 * 80


def test_hidden_and_partial_downloads_are_not_files_yet(landing: LandingZone) -> None:
    drop(landing, ".~lock.leads.csv#", "x")
    drop(landing, "leads.csv.part", LEADS_CSV)
    drop(landing, "leads.csv.crdownload", LEADS_CSV)
    (landing.inbox("leads") / "subfolder").mkdir()
    assert landing.list_files("leads") == []
    assert not tick(landing).run_requests


def test_quarantine_copies_and_keeps_earlier_copies_of_the_same_name(
        landing: LandingZone) -> None:
    path = drop(landing, "bad.csv", "a,b\n1,2\n")
    first = landing.quarantine("leads", "bad.csv", "unknown header")
    path.write_text("a;b\n1;2\n")
    second = landing.quarantine("leads", "bad.csv", "wrong delimiter")

    assert path.read_text() == "a;b\n1;2\n"  # the inbox file stays where and as it was
    assert first.read_text() == "a,b\n1,2\n" and second.read_text() == "a;b\n1;2\n"
    assert second.name == partition_key("bad.csv", landing.sha256("leads", "bad.csv"))
    reasons = sorted(json.loads(p.read_text())["reason"]
                     for p in landing.quarantine_dir("leads").glob("*.reason.json"))
    assert reasons == ["unknown header", "wrong delimiter"]
