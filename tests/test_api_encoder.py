"""The request encoder's remembered values: the same numbers on first sight and on repeats.

The per-request path keeps a table of the raw texts it has already encoded; these tests pin
that a batch, single rows, repeated requests and the DataFrame path all give the same codes
for awkward values (spellings, numbers sent as text, booleans among numbers, infinities).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from leadscore_core.serving import Encoder, FeatureSpec

SPECS = [
    FeatureSpec("source", "categorical", "Lead Source", ["google", "olark chat", "true", "3"]),
    FeatureSpec("visits", "numeric", "TotalVisits"),
    FeatureSpec("opt_out", "boolean", "Do Not Email"),
]
RECORDS = [
    {"source": " Google ", "visits": "1,200", "opt_out": "Yes"},
    {"source": "GOOGLE", "visits": 3, "opt_out": True},
    {"source": "Olark  Chat", "visits": 2.5, "opt_out": "no"},
    {"source": True, "visits": True, "opt_out": 1},
    {"source": 3.0, "visits": float("inf"), "opt_out": 0.0},
    {"source": "3", "visits": "", "opt_out": None},
    {"source": "unheard of", "visits": -math.inf, "opt_out": "maybe"},
    {"source": None, "visits": None},
    {},
]
# by hand: code of the sorted category, the number (missing when unreadable or infinite),
# 1/0 for yes/no (missing when neither)
EXPECTED = [
    [0, 1200.0, 1], [0, 3.0, 1], [1, 2.5, 0], [2, 1.0, 1], [3, math.nan, 0],
    [3, math.nan, math.nan], [math.nan] * 3, [math.nan] * 3, [math.nan] * 3,
]


def test_batch_single_rows_and_repeats_give_the_same_codes():
    enc = Encoder(SPECS)
    want = np.asarray(EXPECTED, dtype=np.float64)
    for _ in range(2):  # the second pass answers from the remembered values
        np.testing.assert_array_equal(enc.transform_records(RECORDS), want)
        for record, row in zip(RECORDS, want, strict=True):
            np.testing.assert_array_equal(enc.transform_records([record])[0], row)


def test_request_path_agrees_with_the_frame_path():
    enc = Encoder(SPECS)
    frame = pd.DataFrame({
        "source": pd.Series([" Google ", "Olark  Chat", "3", None, "nope"], dtype="object"),
        "visits": pd.Series(["1,200", "2.5", "", None, "x"], dtype="object"),
        "opt_out": pd.Series(["Yes", "no", None, "1", "maybe"], dtype="object"),
    })
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    enc.transform_records(records)  # remember them first
    np.testing.assert_array_equal(enc.transform_records(records), enc.transform_frame(frame))


def test_remembered_values_are_bounded():
    enc = Encoder(SPECS)
    enc.transform_records([{"source": f"text {i}"} for i in range(5000)])
    assert len(enc._seen[0]) <= 4 * 4 + 1024 + 1
