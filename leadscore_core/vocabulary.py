"""The one value vocabulary: which words mean true, which mean false, what counts as missing.

Cleaning (a profile's boolean columns and labels), the feature encoder (training, batch scores
and the API) and monitoring (the drift window's request fields) all read a flag through this
module, so a value the model learned as ``True`` is never seen as missing by another stage.
A profile may declare its own words (``true_values`` / ``false_values``); these are the
defaults every profile starts from.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

TRUE_WORDS = ("yes", "y", "true", "t", "1", "1.0")
FALSE_WORDS = ("no", "n", "false", "f", "0", "0.0")
_TRUE = frozenset(TRUE_WORDS)
_FALSE = frozenset(FALSE_WORDS)


def is_missing(value: Any) -> bool:
    """None, NaN, ``pd.NA``, ``NaT`` and blank text are missing."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def flag(value: Any, true_words: frozenset[str] = _TRUE,
         false_words: frozenset[str] = _FALSE) -> bool | None:
    """True, False, or None for a missing or unreadable value.

    Booleans are themselves; the numbers 1 and 0 are True and False (any other number is
    unreadable); text is compared stripped and lower-cased against the words.
    """
    if is_missing(value):
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return True if value == 1 else False if value == 0 else None
    key = str(value).strip().lower()
    return True if key in true_words else False if key in false_words else None


def flags(values: pd.Series, true_words: Iterable[str] = TRUE_WORDS,
          false_words: Iterable[str] = FALSE_WORDS) -> pd.Series:
    """:func:`flag` over a column (each distinct value read once), as pandas ``boolean``."""
    t = frozenset(w.strip().lower() for w in true_words)
    f = frozenset(w.strip().lower() for w in false_words)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    # 1 true, 0 false, -1 missing or unreadable; the last entry stands for pandas' NA code
    table = np.array([{True: 1, False: 0, None: -1}[flag(u, t, f)] for u in uniques] + [-1],
                     dtype=np.int8)
    read = table[np.where(codes < 0, len(table) - 1, codes)]
    return pd.Series(pd.arrays.BooleanArray(read == 1, read < 0), index=values.index,
                     name=values.name)
