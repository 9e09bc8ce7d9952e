"""The landing zone: ``<data>/inbox/<source>/`` where exports are dropped, and quarantine.

Sensors and assets reach files only through :class:`LandingZone`, so a test (or another
storage, e.g. a bucket) can stand in by implementing the same few methods: ``list_files``,
``sha256``, ``local_path``, ``quarantine`` and ``ledger`` (what has landed, by content).
Input files are never deleted or modified: quarantine copies a file and writes the reason
beside the copy.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from leadscore_assets.ingest.ledger import Ledger
from leadscore_core.profiles import Profile, load_profiles
from leadscore_core.settings import Settings

HASH_CHUNK = 1 << 20
# Editors and copy tools write these while a file is on its way; never land them.
PARTIAL_SUFFIXES = (".part", ".partial", ".tmp", ".crdownload", ".download")
# Dagster refuses these in partition keys.
UNSAFE_IN_KEYS = ("...", "\a", "\b", "\f", "\n", "\r", "\t", "\v", "\0")


@dataclass(frozen=True)
class LandedFile:
    """A file in an inbox as a sensor sees it on one tick."""

    name: str
    size: int
    mtime: float


def partition_key(name: str, sha256: str) -> str:
    """``<file name>@<first 10 hex of its SHA-256>``: readable in the UI, unique per content."""
    safe = name
    for bad in UNSAFE_IN_KEYS:
        safe = safe.replace(bad, "_")
    return f"{safe}@{sha256[:10]}"


def split_partition_key(key: str) -> tuple[str, str]:
    """(file name as written in the key, hash prefix)."""
    name, _, short = key.rpartition("@")
    return name, short


class LandingZone(dg.ConfigurableResource):
    """Local folders under the data root: ``inbox/<source>/`` in, ``quarantine/<source>/`` out."""

    root: str = "data"
    settle_seconds: float = 5.0
    profiles_dir: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> LandingZone:
        return cls(root=str(settings.root), settle_seconds=settings.file_settle_seconds,
                   profiles_dir=str(settings.user_profiles_dir))

    @property
    def _settings(self) -> Settings:
        return Settings(data_dir=Path(self.root))

    def inbox(self, source: str) -> Path:
        return self._settings.inbox(source)

    @property
    def prediction_log(self) -> Path:
        """Where the API writes the prediction log's open files (sealed into its inbox)."""
        return self._settings.predictions_dir

    def quarantine_dir(self, source: str) -> Path:
        return self._settings.quarantine(source)

    def declared_formats(self, source: str) -> dict[str, str]:
        """What ``LEADSCORE_FORMATS`` declares for ``source`` (date order, decimal mark,
        thousands separator, delimiter); profiles declare their own."""
        return dict(self._settings.formats.get(source, {}))

    def ledger(self) -> Ledger:
        """The ledger of landed content every landing path shares (see ``ledger.py``)."""
        return Ledger(Path(self.root) / "ledger.sqlite")

    def profiles(self) -> dict[str, Profile]:
        extra = Path(self.profiles_dir) if self.profiles_dir else self._settings.user_profiles_dir
        return load_profiles(extra)

    def list_files(self, source: str) -> list[LandedFile]:
        """Files waiting in the inbox (hidden and partial downloads left out), oldest first."""
        inbox = self.inbox(source)
        if not inbox.is_dir():
            return []
        files = []
        for path in inbox.iterdir():
            if path.name.startswith((".", "~")) or path.name.endswith(PARTIAL_SUFFIXES):
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:  # removed between listing and stat
                continue
            if path.is_file():
                files.append(LandedFile(path.name, stat.st_size, stat.st_mtime))
        return sorted(files, key=lambda f: (f.mtime, f.name))

    def local_path(self, source: str, name: str) -> Path:
        return self.inbox(source) / name

    def sha256(self, source: str, name: str) -> str:
        return _file_sha256(self.local_path(source, name))

    def find(self, source: str, key: str) -> str | None:
        """Name of the inbox file a partition key was made from (``None`` when it is gone)."""
        name, short = split_partition_key(key)
        if self.local_path(source, name).is_file():
            return name
        for landed in self.list_files(source):
            if partition_key(landed.name, short) == key:
                return landed.name
        return None

    def quarantine(self, source: str, name: str, reason: str) -> Path:
        """Copy ``name`` aside with ``<name>.reason.json``; the inbox file stays as it is."""
        target_dir = self.quarantine_dir(source)
        target_dir.mkdir(parents=True, exist_ok=True)
        sha = self.sha256(source, name)
        target = target_dir / name
        if target.exists() and _file_sha256(target) != sha:
            # another file of the same name was quarantined before: keep both
            target = target_dir / partition_key(name, sha)
        shutil.copy2(self.local_path(source, name), target)
        reason_file = target_dir / f"{target.name}.reason.json"
        reason_file.write_text(json.dumps({
            "file": name,
            "source": source,
            "reason": reason,
            "sha256": sha,
            "quarantined_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }, indent=2) + "\n")
        return target


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
