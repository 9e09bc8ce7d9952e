"""Which feature rows a model has already seen, by each row's own identity and time.

A feature row's key is a hash of everything that says which entity it is, as of when, and
what the model would read about it: every column of the feature table except its labels
(they arrive later and do not make the row another row) and its lineage (which file it came
from, when that landed). Re-landing old rows under another file name, or the same file
again, gives the same keys, so it never makes old rows new; a new lead, a new snapshot of a
customer's account or a new cutoff's activity gives a new key.

Each training logs the keys of every row of its training table
(``TRAINING_ROWS_ARTIFACT`` in the MLflow run); the drift reports and the performance
estimates take as "arrived since training" the rows whose key the champion's training did
not see.

No Dagster imports here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadscore_core.warehouse import LINEAGE_COLUMNS

TRAINING_ROWS_ARTIFACT = "training_rows.parquet"
KEY_COLUMN = "row_key"
# Labels and what is derived from them: known after the row, never part of its identity.
LABEL_COLUMNS = frozenset({"converted", "churned", "plan", "label_source", "paid_at"})
NOT_KEYED = LABEL_COLUMNS | frozenset(LINEAGE_COLUMNS)


def row_keys(frame: pd.DataFrame) -> np.ndarray:
    """One unsigned 64-bit key per row (see the module docstring), in row order.

    The columns are taken by name, in sorted order, as text, so the same rows read from the
    same published table give the same keys in any process.
    """
    columns = sorted(c for c in frame.columns if c not in NOT_KEYED)
    if not len(frame):
        return np.zeros(0, dtype=np.uint64)
    text = pd.DataFrame({c: frame[c].astype("string") for c in columns}, index=frame.index)
    return pd.util.hash_pandas_object(text, index=False).to_numpy(dtype=np.uint64)


def training_rows_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """What a training logs as ``TRAINING_ROWS_ARTIFACT``: the keys of its table's rows."""
    return pd.DataFrame({KEY_COLUMN: row_keys(frame)})


def unseen(frame: pd.DataFrame, seen: np.ndarray) -> np.ndarray:
    """True for the rows of ``frame`` whose key is not among ``seen``."""
    return ~np.isin(row_keys(frame), seen)
