"""One ledger of landed content, shared by every path that lands a file.

The raw asset records each file it lands (source, SHA-256 of the bytes, partition, name, rows)
in ``<data>/ledger.sqlite``, whoever started the run: a sensor, ``leadscore land``,
``leadscore demo``. The sensors and the CLI look a file up before landing it, so the same
bytes under any name, by any path, land once: starting the daemon after ``make demo``
requests no run for what the demo landed, and ``leadscore land`` of a known file says so and
lands nothing.

SQLite, not the warehouse: a sensor must not open the DuckDB file a run may be writing, and
SQLite lets many readers and one writer share a file safely. No Dagster imports here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS landed (
    source     TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    partition  TEXT NOT NULL,
    file       TEXT NOT NULL,
    rows       INTEGER NOT NULL,
    landed_at  TEXT NOT NULL,
    PRIMARY KEY (source, sha256)
)
"""


@dataclass(frozen=True)
class Landed:
    source: str
    sha256: str
    partition: str
    file: str
    rows: int
    landed_at: str


class Ledger:
    """``<data>/ledger.sqlite``: what has landed, by content."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=30)) as conn:
            conn.execute(SCHEMA)
            with conn:
                yield conn

    def find(self, source: str, sha256: str) -> Landed | None:
        if not self.path.exists():
            return None
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM landed WHERE source = ? AND sha256 = ?",
                               [source, sha256]).fetchone()
        return Landed(*row) if row else None

    def record(self, source: str, sha256: str, partition: str, file: str, rows: int) -> None:
        with self._connect() as conn:
            conn.execute("INSERT OR REPLACE INTO landed VALUES (?, ?, ?, ?, ?, ?)",
                         [source, sha256, partition, file, rows,
                          datetime.now(UTC).isoformat(timespec="seconds")])

    def all(self, source: str | None = None) -> list[Landed]:
        if not self.path.exists():
            return []
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM landed WHERE ? IS NULL OR source = ? ORDER BY landed_at",
                [source, source]).fetchall()
        return [Landed(*r) for r in rows]
