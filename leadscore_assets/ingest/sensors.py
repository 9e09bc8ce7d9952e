"""One sensor per source: a new, complete file in its inbox becomes a partition and a run.

The cursor (JSON, persisted by Dagster so it survives daemon restarts) holds:

- ``ledger``: content hash -> the partition requested for those bytes. With the ledger every
  landing path shares (``ledger.py``: what the CLI, the demo and earlier runs landed), the same
  bytes dropped again under any name, or landed before by another path, request no run; the
  sensor logs it and records an observation on the raw asset naming the earlier file, so the
  UI shows the file was recognised.
- ``seen``: inbox name -> [size, mtime, hash] of files already decided, so an unchanged file
  is not hashed again on every tick. A file whose size or mtime changes is decided again.
- ``pending``: inbox name -> [size, mtime] of files not yet stable on the previous tick.

A file is stable when its size and mtime are the same as on the previous tick (or it is seen
for the first time) and its mtime is at least ``settle_seconds`` old.
"""

import json
import time
from dataclasses import dataclass, field

import dagster as dg

from leadscore_assets.ingest.assets import PARTITIONS, RAW_ASSETS
from leadscore_assets.ingest.landing import LandedFile, LandingZone, partition_key
from leadscore_core.predlog import seal_abandoned
from leadscore_core.settings import INGEST_SOURCES

TICK_SECONDS = 15
LEDGER_HASH_CHARS = 32  # 128 bits: collisions are not a practical concern, the cursor stays small


@dataclass
class InboxCursor:
    ledger: dict[str, str] = field(default_factory=dict)
    seen: dict[str, list] = field(default_factory=dict)
    pending: dict[str, list] = field(default_factory=dict)

    @classmethod
    def load(cls, raw: str | None) -> "InboxCursor":
        if not raw:
            return cls()
        data = json.loads(raw)
        return cls(data.get("ledger", {}), data.get("seen", {}), data.get("pending", {}))

    def dump(self) -> str:
        return json.dumps({"ledger": self.ledger, "seen": self.seen, "pending": self.pending},
                          separators=(",", ":"), sort_keys=True)


def _is_stable(landed: LandedFile, previous: list | None, now: float, settle: float) -> bool:
    if now - landed.mtime < settle:
        return False
    return previous is None or previous == [landed.size, landed.mtime]


def evaluate_inbox(context: dg.SensorEvaluationContext, source: str,
                   landing: LandingZone) -> dg.SensorResult:
    cursor = InboxCursor.load(context.cursor)
    now = time.time()
    asset_key = RAW_ASSETS[source].key
    requests: list[dg.RunRequest] = []
    new_keys: list[str] = []
    observations: list[dg.AssetObservation] = []
    waiting: list[str] = []
    pending: dict[str, list] = {}
    files = landing.list_files(source)

    for landed in files:
        seen = cursor.seen.get(landed.name)
        if seen and seen[:2] == [landed.size, landed.mtime]:
            continue
        if not _is_stable(landed, cursor.pending.get(landed.name), now, landing.settle_seconds):
            pending[landed.name] = [landed.size, landed.mtime]
            waiting.append(landed.name)
            continue
        sha = landing.sha256(source, landed.name)
        short = sha[:LEDGER_HASH_CHARS]
        cursor.seen[landed.name] = [landed.size, landed.mtime, short]
        shared = landing.ledger().find(source, sha)
        earlier = cursor.ledger.get(short) or (shared.partition if shared else None)
        if earlier == partition_key(landed.name, sha):  # touched, same bytes: nothing to say
            cursor.ledger[short] = earlier
            continue
        if earlier is not None:
            context.log.info(f"{source}: {landed.name} has the same bytes as {earlier}; "
                             "not landed again")
            observations.append(dg.AssetObservation(
                asset_key=asset_key,
                metadata={
                    "duplicate_file": dg.MetadataValue.text(landed.name),
                    "duplicate_of": dg.MetadataValue.text(earlier),
                    "sha256": dg.MetadataValue.text(sha),
                    "action": dg.MetadataValue.text("skipped: same bytes already landed"),
                },
            ))
            continue
        key = partition_key(landed.name, sha)
        cursor.ledger[short] = key
        new_keys.append(key)
        requests.append(dg.RunRequest(
            run_key=f"{source}:{sha}",
            partition_key=key,
            tags={"leadscore/source": source, "leadscore/file": landed.name,
                  "leadscore/sha256": sha},
        ))
        context.log.info(f"{source}: new file {landed.name} -> partition {key}")

    present = {f.name for f in files}
    cursor.seen = {name: v for name, v in cursor.seen.items() if name in present}
    cursor.pending = pending
    if requests:
        return dg.SensorResult(
            run_requests=requests,
            dynamic_partitions_requests=[PARTITIONS[source].build_add_request(new_keys)],
            asset_events=observations,
            cursor=cursor.dump(),
        )
    reason = (f"waiting for {len(waiting)} file(s) still being written: {', '.join(waiting)}"
              if waiting else f"no new files in the {source} inbox")
    return dg.SensorResult(skip_reason=reason, asset_events=observations, cursor=cursor.dump())


def _inbox_sensor(source: str) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"{source}_inbox_sensor",
        target=RAW_ASSETS[source],
        minimum_interval_seconds=TICK_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Lands each new, complete file of data/inbox/{source}/ as a partition of "
                    f"raw/{source}; the same bytes under any name are recognised and skipped.",
    )
    def inbox_sensor(context: dg.SensorEvaluationContext,
                     landing: LandingZone) -> dg.SensorResult:
        if source == "predictions":  # a log file its API process left open when it died
            for path in seal_abandoned(landing.prediction_log,
                                       inbox=landing.inbox(source)):
                context.log.warning(f"sealed {path.name}: its writer stopped without closing it")
        return evaluate_inbox(context, source, landing)

    return inbox_sensor


INBOX_SENSORS: dict[str, dg.SensorDefinition] = {s: _inbox_sensor(s) for s in INGEST_SOURCES}
