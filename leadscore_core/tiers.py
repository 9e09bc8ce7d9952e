"""Lead tier boundaries shared by the batch scores and the API.

``scores/leads`` tiers every open lead A to D by the quartiles of the current open leads'
scores, and publishes those three boundaries beside the serving snapshot (``lead_tiers.json``,
written to a temporary file and renamed into place) with the model name and version they were
computed for. The API tiers a posted lead by the same boundaries while it serves that version;
when the file is absent, unreadable, or for another version (a champion promoted since the
last batch scoring), it falls back to the boundaries stored in the model bundle (quartiles of
the held-out scores at training time).

This module has no Dagster imports: the API and the scores stage both use it.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("leadscore.api")

LEAD_TIERS_FILE = "lead_tiers.json"


def lead_tiers_path(serving_snapshot: Path) -> Path:
    """Where ``scores/leads`` publishes its boundaries: beside the serving snapshot."""
    return Path(serving_snapshot).parent / LEAD_TIERS_FILE


def lead_tiers_document(model: str, version: str, boundaries: list[float], *,
                        open_leads: int) -> dict[str, Any]:
    """The published document: three ascending scores (a score on a boundary belongs to the
    tier above), the model version they belong to, and how many leads they were taken from."""
    bounds = [float(b) for b in boundaries]
    if len(bounds) != 3 or bounds != sorted(bounds):
        raise ValueError(f"tier boundaries must be three ascending scores, got {boundaries}")
    return {"model": model, "version": str(version), "boundaries": bounds,
            "open_leads": int(open_leads),
            "computed_at": datetime.now(UTC).isoformat(timespec="seconds")}


class PublishedTiers:
    """The published boundaries, re-read when the file changes (mtime, inode or size).

    ``refresh`` runs off the request path (the API's background task); ``bounds_for`` is a
    dictionary look-up.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._stamp: tuple[int, int, int] | None = None
        self._current: tuple[str, str, np.ndarray] | None = None

    def refresh(self) -> bool:
        """Re-read the file if it changed; True when what is served changed."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            changed = self._current is not None
            self._stamp, self._current = None, None
            return changed
        stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            doc = json.loads(self.path.read_text())
            bounds = np.asarray([float(b) for b in doc["boundaries"]], dtype=np.float64)
            if bounds.shape != (3,) or np.any(np.diff(bounds) < 0):
                raise ValueError(f"boundaries {doc['boundaries']} are not three ascending scores")
            self._current = (str(doc["model"]), str(doc["version"]), bounds)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s: unreadable lead tier boundaries (%s); serving the model's own",
                        self.path, exc)
            self._current = None
        return True

    def bounds_for(self, model: str, version: str) -> np.ndarray | None:
        """The published boundaries if they belong to this model version, else None."""
        current = self._current
        if current is None or current[0] != model or current[1] != version:
            return None
        return current[2]
