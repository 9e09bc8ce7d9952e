"""Exactly once: a spool of deliveries and the ledger that makes each one durable and unique.

Each source (``stripe``, ``form:<profile>``) has a :class:`LedgerSpool`: the shared
append-and-seal writer (:class:`leadscore_core.predlog.Spool`) writing into
``<data>/spool/<source>/`` and sealing into the source's inbox. Beside it, a SQLite ledger
(``<data>/spool/deliveries.sqlite``, WAL, ``synchronous=FULL``) holds, per delivery key (a
Stripe event id, a form submission's idempotency key), the file and line that hold it and,
until that file is sealed, the line itself.

Per batch, on the writer thread: ``BEGIN IMMEDIATE`` (the write lock, so two API worker
processes never both store one key), look the keys up (a key already there is a duplicate and
is not written), append the new lines to the open file, insert key, file, line and the line's
bytes, ``COMMIT``: one fsync (of the ledger's write-ahead log) per batch makes the batch
durable, and only then is a delivery answered 2xx. The spool file is fsync'd once, before it
is sealed into the inbox; then the ledger forgets the bytes it held for it.

After a crash (process or machine), :func:`recover` rebuilds every file a dead writer left
unsealed from the ledger's lines, in order, and seals it: every acknowledged delivery lands
once, and a delivery that was never committed does not land (its sender gets no 2xx and
retries it, and it is stored then).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from leadscore_core.predlog import (
    CLOSED_SUFFIX,
    OPEN_SUFFIX,
    Spool,
    SpoolJob,
    fsync_dir,
    writer_gone,
)

STORED = "stored"
RECOVERED_SUFFIX = ".jsonl.recovered"
DUPLICATE = "duplicate"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    source      TEXT NOT NULL,
    key         TEXT NOT NULL,
    file        TEXT NOT NULL,
    line        INTEGER NOT NULL,
    received_at REAL NOT NULL,
    body        BLOB,           -- the line, until its file is sealed
    PRIMARY KEY (source, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_by_file ON deliveries (file);
CREATE INDEX IF NOT EXISTS deliveries_unsealed ON deliveries (file) WHERE body IS NOT NULL;
"""


class DeliveryLedger:
    """The SQLite ledger; one connection per thread that uses it.

    Commits never copy the write-ahead log into the database file themselves (that copy, and
    its fsync, would stall the batch that triggers it): a background thread checkpoints
    every ``checkpoint_seconds`` instead.
    """

    def __init__(self, path: Path | str, *, checkpoint_seconds: float = 1.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        with contextlib.closing(self._connect(register=False)) as conn:
            conn.executescript(_SCHEMA)
        self._stop = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoint, args=(checkpoint_seconds,),
                                              name="webhook-ledger-checkpoint", daemon=True)
        self._checkpointer.start()

    def _connect(self, register: bool = True) -> sqlite3.Connection:
        # autocommit mode: transactions are explicit (BEGIN IMMEDIATE ... COMMIT)
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # a commit survives a power cut
        conn.execute("PRAGMA wal_autocheckpoint=0")  # see _checkpoint
        if register:
            with self._lock:
                self._connections.append(conn)
        return conn

    def _checkpoint(self, every: float) -> None:
        conn = self._connect()
        while not self._stop.wait(every):
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def close(self) -> None:
        self._stop.set()
        self._checkpointer.join(10)
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()
        self._local = threading.local()

    def unsealed_files(self, source: str) -> list[str]:
        """Files (names without suffix) whose lines the ledger still holds."""
        rows = self.conn.execute("SELECT DISTINCT file FROM deliveries WHERE source = ? AND "
                                 "body IS NOT NULL ORDER BY file", (source,))
        return [file for (file,) in rows]

    def lines_of(self, file: str) -> list[bytes]:
        rows = self.conn.execute("SELECT body FROM deliveries WHERE file = ? AND body IS NOT "
                                 "NULL ORDER BY line", (file,))
        return [bytes(body) for (body,) in rows]

    def forget_lines(self, file: str) -> None:
        """The file is sealed: its lines live there now."""
        self.conn.execute("UPDATE deliveries SET body = NULL WHERE file = ?", (file,))

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
        options.setdefault("flush_interval", 1.0)  # only how often an idle writer wakes
        options.setdefault("max_batch", 256)
        super().__init__(directory, prefix=prefix, sealed_dir=sealed_dir, sync_on_seal=True,
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
            "INSERT INTO deliveries (source, key, file, line, received_at, body) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(self.source, j.payload[0], j.file, j.first_line, now, j.lines[0])
             for j in jobs])
        conn.execute("COMMIT")

    def abort(self, jobs: list[SpoolJob], error: BaseException) -> None:
        conn = self.ledger.conn
        if conn.in_transaction:
            conn.execute("ROLLBACK")

    def sealed(self, path: Path) -> None:
        self.ledger.forget_lines(path.name[: -len(CLOSED_SUFFIX)])


def recover(ledger: DeliveryLedger, source: str, directory: Path | str,
            sealed_dir: Path | str) -> list[Path]:
    """Seal what writers that are gone left of ``source``: each file the ledger still holds
    lines of is written anew from them (fsync'd, then renamed into ``sealed_dir``); an open
    file is kept beside, renamed ``.jsonl.recovered``, and never read again."""
    directory, sealed_dir = Path(directory), Path(sealed_dir)
    out = []
    for file in ledger.unsealed_files(source):
        if not writer_gone(file):
            continue  # a live worker process is writing it
        # under the ledger's write lock: two workers starting at once seal a file once
        ledger.conn.execute("BEGIN IMMEDIATE")
        try:
            lines = ledger.lines_of(file)
            target = sealed_dir / f"{file}{CLOSED_SUFFIX}"
            if lines and not target.exists():  # else: sealed just before the crash
                sealed_dir.mkdir(parents=True, exist_ok=True)
                partial = sealed_dir / f".{file}.sealing"
                with open(partial, "wb") as handle:
                    handle.write(b"".join(line + b"\n" for line in lines))
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(partial, target)
                fsync_dir(sealed_dir)
                out.append(target)
            ledger.forget_lines(file)
            ledger.conn.execute("COMMIT")
        except BaseException:
            ledger.conn.execute("ROLLBACK")
            raise
    for orphan in sorted(directory.glob(f"*{OPEN_SUFFIX}")) if directory.is_dir() else []:
        if writer_gone(orphan.name):  # its committed lines were sealed above
            os.replace(orphan, orphan.with_name(orphan.name[: -len(OPEN_SUFFIX)]
                                                + RECOVERED_SUFFIX))
    return out
