"""One vocabulary for flags: cleaning, the encoder and the drift window read a value alike."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadscore_assets.monitoring.assets import type_like_features
from leadscore_core.profiles import Profile
from leadscore_core.serving import Encoder, FeatureSpec
from leadscore_core.vocabulary import FALSE_WORDS, TRUE_WORDS, flag, flags

# what a request or an export may carry in a boolean field
SENT = [*TRUE_WORDS, *FALSE_WORDS, "Y", " t ", "YES", "False", "N", True, False, 1, 0, 1.0,
        0.0, 2, "maybe", "", "  ", None, float("nan")]


def test_the_words_are_read_as_documented():
    assert [flag(w) for w in ("y", "t", "Yes", " TRUE ", "1", "1.0", True, 1)] == [True] * 8
    assert [flag(w) for w in ("n", "f", "No", "false", "0", "0.0", False, 0)] == [False] * 8
    assert [flag(w) for w in ("", None, float("nan"), pd.NA, "maybe", 2)] == [None] * 6


def test_the_drift_window_reads_a_flag_as_the_encoder_does():
    # the request fields monitoring compares with the training features, and the matrix the
    # model scored from the same fields: a value the model saw as true is never "missing"
    encoder = Encoder([FeatureSpec("opted_in", "boolean", "Opted In")])
    encoded = encoder.transform_records([{"opted_in": v} for v in SENT])[:, 0]
    window = type_like_features(pd.DataFrame({"opted_in": pd.Series(SENT, dtype=object)}),
                                {"opted_in": "boolean"})["opted_in"]
    as_window = [None if pd.isna(v) else float(v) for v in window]
    as_encoded = [None if np.isnan(v) else float(v) for v in encoded]
    assert as_window == as_encoded
    assert as_window[SENT.index("y")] == 1.0 and as_window[SENT.index("t")] == 1.0
    assert as_window[SENT.index("n")] == 0.0 and as_window[SENT.index("f")] == 0.0


def test_cleaning_reads_a_flag_as_the_encoder_does():
    profile = Profile.model_validate({
        "name": "p", "source": "leads", "detect": ["Id"], "id": {"column": "Id"},
        "features": {"boolean": ["Opted In"]}})
    text = [v for v in SENT if isinstance(v, str)]
    frame = pd.DataFrame({"Id": [str(i) for i in range(len(text))], "Opted In": text})
    typed = profile.resolve(list(frame.columns)).type_frame(frame).frame["opted_in"]
    encoded = Encoder([FeatureSpec("opted_in", "boolean", "Opted In")]).transform_records(
        [{"opted_in": v} for v in text])[:, 0]
    assert [None if pd.isna(v) else float(v) for v in typed] == \
        [None if np.isnan(v) else float(v) for v in encoded]


@pytest.mark.parametrize("dtype", [object, "string"])
def test_flags_keeps_the_index_and_marks_unreadable_values_missing(dtype):
    values = pd.Series(["yes", "no", "perhaps", None], index=[10, 11, 12, 13], dtype=dtype)
    out = flags(values)
    assert list(out.index) == [10, 11, 12, 13]
    assert str(out.dtype) == "boolean"
    assert out.tolist() == [True, False, pd.NA, pd.NA]


def test_a_profile_may_declare_its_own_words():
    out = flags(pd.Series(["oui", "non", "yes"]), ["oui"], ["non"])
    assert out.tolist() == [True, False, pd.NA]
