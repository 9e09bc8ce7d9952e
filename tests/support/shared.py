"""The public data sets in ``../shared/data`` as the tests read them."""

from __future__ import annotations

import csv
import gzip
from collections.abc import Callable
from pathlib import Path

ONLINE_RETAIL = "online_retail_uci.csv.gz"


def online_retail_rows(shared_data: Path, keep: Callable[[int], bool] = lambda i: True
                       ) -> tuple[list[str], list[list[str]]]:
    """Online Retail's header and its rows as text (those whose 0-based index ``keep``
    keeps), read with the csv module from the UTF-8 original."""
    with gzip.open(shared_data / ONLINE_RETAIL, "rt", encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [row for i, row in enumerate(reader) if keep(i)]
    return header, rows
