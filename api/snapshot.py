"""The serving snapshot: the latest activity features per known customer, read-only.

Dagster publishes it as a Parquet file written elsewhere and renamed into place, so the file
at the path is always complete. The API never opens the warehouse; it re-reads this file when
its identity (inode, modification time, size) changes, which an atomic rename always does.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ID_COLUMN = "customer_id"
AS_OF_COLUMNS = ("as_of", "cutoff", "snapshot_date")


class SnapshotUnavailable(RuntimeError):
    """No snapshot has been published yet, or the file cannot be read."""


@dataclass(frozen=True)
class _Loaded:
    identity: tuple[int, int, int]
    rows: dict[str, dict[str, Any]]
    as_of: dict[str, str | None]


def customer_key(value: Any) -> str | None:
    """Ids as people type them: ``17850.0`` (a float-typed export) and ``17850`` are one id."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    if text.endswith(".0") and text[:-2].isdigit():
        text = text[:-2]
    return text or None


class ServingSnapshot:
    def __init__(self, path: Path, id_column: str = ID_COLUMN):
        self.path = Path(path)
        self.id_column = id_column
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()

    def _identity(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def refresh(self) -> bool:
        """Re-read the file if it was replaced; True when it was (re)loaded."""
        identity = self._identity()
        if identity is None or (self._loaded and self._loaded.identity == identity):
            return False
        with self._lock:
            if self._loaded and self._loaded.identity == identity:
                return False
            self._loaded = self._read(identity)
        return True

    def _read(self, identity: tuple[int, int, int]) -> _Loaded:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(self.path)
        except Exception as exc:  # a file replaced mid-read or not Parquet at all
            raise SnapshotUnavailable(
                f"serving snapshot {self.path.name} unreadable: {exc}") from exc
        if self.id_column not in table.column_names:
            raise SnapshotUnavailable(
                f"serving snapshot {self.path.name} has no {self.id_column!r} column")
        as_of_col = next((c for c in AS_OF_COLUMNS if c in table.column_names), None)
        rows: dict[str, dict[str, Any]] = {}
        as_of: dict[str, str | None] = {}
        for row in table.to_pylist():
            key = customer_key(row.pop(self.id_column))
            if key is None:
                continue
            stamp = row.get(as_of_col) if as_of_col else None
            rows[key] = row
            as_of[key] = None if stamp is None else str(stamp)
        return _Loaded(identity, rows, as_of)

    def lookup(self, customer_id: str) -> tuple[dict[str, Any], str | None] | None:
        """The customer's latest features and their as-of date, or None for an unknown id."""
        self.refresh()
        loaded = self._loaded
        if loaded is None:
            raise SnapshotUnavailable("no serving snapshot has been published yet")
        key = customer_key(customer_id)
        row = loaded.rows.get(key) if key else None
        return None if row is None else (row, loaded.as_of.get(key))

    @property
    def customers(self) -> int:
        return len(self._loaded.rows) if self._loaded else 0
