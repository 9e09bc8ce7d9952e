"""Exactly once: a durable spool of deliveries and the ledger of what it holds.

Each source (``stripe``, ``form:<profile>``) has a :class:`LedgerSpool`: the shared
append-and-seal writer (:class:`leadscore_core.predlog.Spool`) in durable mode, writing
into ``<data>/spool/<source>/`` and sealing into the source's inbox. Beside it, a SQLite
ledger (``<data>/spool/deliveries.sqlite``) maps each delivery key (a Stripe event id, a
form submission's idempotency key) to the file and line that holds it.

Per batch, on the writer thread: ``BEGIN IMMEDIATE`` (the write lock, so two API worker
processes never both store one key), look the keys up (a key already there is a duplicate and
is not written), append the new lines and fsync them, insert their keys with file and line,
``COMMIT`` (synchronous=FULL). Only then is a delivery answered 2xx. So a key is committed
only if its line is durable, and a line that never got its key committed (the process died in
between) was never acknowledged.

After a crash, :func:`recover` seals the dead process's open files keeping exactly the lines
the ledger holds for them: every acknowledged delivery lands once, an unacknowledged one does
not (the sender retries it, and it is stored then).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from leadscore_core.predlog import Spool, SpoolJob, seal_abandoned

STORED = "stored"
DUPLICATE = "duplicate"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    source      TEXT NOT NULL,
    key         TEXT NOT NULL,
    file        TEXT NOT NULL,
    line        INTEGER NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (source, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_by_file ON deliveries (file);
"""


class DeliveryLedger:
    """The SQLite ledger; one connection per thread that uses it."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with contextlib.closing(self._connect()) as conn:
            conn.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        # autocommit mode: transactions are explicit (BEGIN IMMEDIATE ... COMMIT)
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # a commit survives a power cut
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def lines_of(self, file: str) -> set[int]:
        rows = self.conn.execute("SELECT line FROM deliveries WHERE file = ?", (file,))
        return {line for (line,) in rows}

    def count(self, source: str | None = None) -> int:
        if source is None:
            return self.conn.execute("SELECT count(*) FROM deliveries").fetchone()[0]
        return self.conn.execute("SELECT count(*) FROM deliveries WHERE source = ?",
                                 (source,)).fetchone()[0]


class LedgerSpool(Spool):
    """A durable spool whose jobs are ``(key, line)``; each job's result is ``stored`` or
    ``duplicate``."""

    def __init__(self, source: str, ledger: DeliveryLedger, directory: Path | str,
                 sealed_dir: Path | str, *, prefix: str, max_records: int,
                 max_age_seconds: float, **options: Any) -> None:
        self.source = source
        self.ledger = ledger
        options.setdefault("flush_interval", 0.05)
        options.setdefault("max_batch", 256)
        super().__init__(directory, prefix=prefix, sealed_dir=sealed_dir, durable=True,
                         max_records=max_records, max_age_seconds=max_age_seconds,
                         thread_name=f"webhook-spool-{source}", **options)

    def render(self, jobs: list[SpoolJob]) -> None:
        for job in jobs:
            job.lines = [job.payload[1]]

    def begin(self, jobs: list[SpoolJob]) -> list[SpoolJob]:
        conn = self.ledger.conn
        conn.execute("BEGIN IMMEDIATE")
        fresh, keys = [], set()
        for job in jobs:
            key = job.payload[0]
            known = key in keys or conn.execute(
                "SELECT 1 FROM deliveries WHERE source = ? AND key = ?",
                (self.source, key)).fetchone() is not None
            if known:
                job.result = DUPLICATE
                continue
            keys.add(key)
            job.result = STORED
            fresh.append(job)
        return fresh

    def commit(self, jobs: list[SpoolJob]) -> None:
        now = time.time()
        conn = self.ledger.conn
        conn.executemany(
            "INSERT INTO deliveries (source, key, file, line, received_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [(self.source, j.payload[0], j.file, j.first_line, now) for j in jobs])
        conn.execute("COMMIT")

    def abort(self, jobs: list[SpoolJob], error: BaseException) -> None:
        conn = self.ledger.conn
        if conn.in_transaction:
            conn.execute("ROLLBACK")


def recover(ledger: DeliveryLedger, directory: Path | str, sealed_dir: Path | str
            ) -> list[Path]:
    """Seal the open files of dead writers, keeping only the lines the ledger committed."""
    committed: dict[str, set[int]] = {}

    def keep(file: str, line: int, _text: bytes) -> bool:
        if file not in committed:
            committed[file] = ledger.lines_of(file)
        return line in committed[file]

    return seal_abandoned(directory, 0.0, sealed_dir=sealed_dir, keep=keep)
