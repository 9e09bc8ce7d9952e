"""Reading the prediction log's sealed files back, as the tests of its writer and of the API
need: the files of a folder, and their entries."""

from __future__ import annotations

import json
from pathlib import Path

from leadscore_core.predlog import CLOSED_SUFFIX


def sealed_files(directory: Path | str) -> list[Path]:
    """The sealed (``.jsonl``) files of a folder, oldest name first."""
    directory = Path(directory)
    return sorted(p for p in directory.glob(f"*{CLOSED_SUFFIX}") if p.is_file())


def read_entries(path: Path | str) -> list[dict]:
    """Every line of a sealed file, decoded (the writer writes nothing else)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def land_prediction_log(data: Path, warehouse, instance=None) -> list:
    """Land every sealed file of ``<data>/inbox/predictions/`` as the inbox sensor's runs
    would (one partition per file); returns the runs' results."""
    from leadscore_assets.ingest.assets import land_file
    from leadscore_assets.ingest.landing import LandingZone

    landing = LandingZone(root=str(data), settle_seconds=0)
    return [land_file("predictions", path.name, landing=landing, warehouse=warehouse,
                      instance=instance)
            for path in sealed_files(landing.inbox("predictions"))]
