"""Files Dagster publishes for the service and its pages, and how they are read.

The API and the pages never open the warehouse (it has one writer): what they show beyond the
registry is published as files, each written beside its final name and renamed into place,
so a reader sees the old file or the new one. ``PublishedFile`` re-reads one when its identity
(inode, modification time, size) changes and otherwise answers from memory.

No Dagster and no Litestar imports.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

# Beside the serving snapshot: the open leads as ``scores/leads`` ranked them (the rows of
# ``lead_scores.csv`` plus each lead's features and contact fields, for the pages).
OPEN_LEADS_FILE = "open_leads.parquet"
# the account snapshots' features as their files spelled them (the customer pages, the API)
CUSTOMER_ACCOUNTS_FILE = "customer_accounts.parquet"
# In the monitoring folder: realised performance per served version (JSON list of rows).
REALISED_PERFORMANCE_FILE = "realised_performance.json"
# In the monitoring folder: live evidence on challengers from shadow scoring (JSON list).
SHADOW_EVIDENCE_FILE = "shadow_evidence.json"
# In the monitoring folder: realised ROC-AUC per model and calendar window of prediction time,
# with the confidence-based estimate beside it (JSON list of rows).
REALISED_OVER_TIME_FILE = "realised_over_time.json"

T = TypeVar("T")


def open_leads_path(serving_snapshot: Path) -> Path:
    return Path(serving_snapshot).parent / OPEN_LEADS_FILE


def customer_accounts_path(serving_snapshot: Path) -> Path:
    return Path(serving_snapshot).parent / CUSTOMER_ACCOUNTS_FILE


def realised_performance_path(monitoring_dir: Path) -> Path:
    return Path(monitoring_dir) / REALISED_PERFORMANCE_FILE


def shadow_evidence_path(monitoring_dir: Path) -> Path:
    return Path(monitoring_dir) / SHADOW_EVIDENCE_FILE


def estimated_summary_path(monitoring_dir: Path, model: str) -> Path:
    """The latest label-free performance estimate of a model (short name), as JSON."""
    return Path(monitoring_dir) / f"{model}_estimated.json"


def realised_over_time_path(monitoring_dir: Path) -> Path:
    return Path(monitoring_dir) / REALISED_OVER_TIME_FILE


def publish_file(write, path: Path) -> Path:
    """Write through ``write(tmp_path)`` beside ``path``, then rename into place (atomic).

    A reader (a CRM import, the API) sees the old file or the new one, never half of one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        # mkstemp makes owner-only files; a published file is for other readers too
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class PublishedFile(Generic[T]):
    """A published file parsed by ``read(path)``, re-read only when it was replaced."""

    def __init__(self, path: Path, read: Callable[[Path], T]):
        self.path = Path(path)
        self._read = read
        self._identity: tuple[int, int, int] | None = None
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T | None:
        """The parsed file, or None when it has not been published (or cannot be read)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        identity = (st.st_ino, st.st_mtime_ns, st.st_size)
        if identity != self._identity:
            with self._lock:
                if identity != self._identity:
                    try:
                        self._value = self._read(self.path)
                    except Exception:  # replaced mid-read, or not what it should be
                        return self._value
                    self._identity = identity
        return self._value


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))
