"""One row through LightGBM's single-row C API, prepared once per model.

``Booster.predict`` rebuilds its predictor, parses parameters and copies the input on every
call: around 50 microseconds before a single tree is walked. LightGBM's
``LGBM_BoosterPredictForMatSingleRowFast`` keeps all of that in a handle made once, so a
one-lead request pays only for walking the trees. Used only on the event loop's thread (a
handle must not be shared by concurrent calls); batches use ``Booster.predict``.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import lightgbm as lgb

NORMAL, RAW_SCORE, LEAF_INDEX = 0, 1, 2
_FLOAT64 = 1


class FastRow:
    def __init__(self, booster: lgb.Booster, predict_type: int, n_features: int, n_out: int):
        # imported with the first model, not with the API (LightGBM imports scikit-learn)
        from lightgbm.basic import _LIB, _c_str, _safe_call

        self._lib, self._safe_call = _LIB, _safe_call
        self._booster = booster  # keeps the model alive as long as the handle
        self._handle = ctypes.c_void_p()
        _safe_call(_LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
            booster._handle, ctypes.c_int(predict_type), ctypes.c_int(0), ctypes.c_int(-1),
            ctypes.c_int(_FLOAT64), ctypes.c_int32(n_features), _c_str("num_threads=1"),
            ctypes.byref(self._handle)))
        self._row = np.empty(n_features, dtype=np.float64)
        self._row_ptr = self._row.ctypes.data_as(ctypes.c_void_p)
        self._out = np.empty(n_out, dtype=np.float64)
        self._out_ptr = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._out_len = ctypes.c_int64()
        self._out_len_ref = ctypes.byref(self._out_len)
        self._predict = _LIB.LGBM_BoosterPredictForMatSingleRowFast

    def __call__(self, row: np.ndarray) -> np.ndarray:
        return self.into(row).copy()

    def into(self, row: np.ndarray | list[float]) -> np.ndarray:
        """The output in the handle's own buffer: valid until the next call."""
        self._row[:] = row
        if self._predict(self._handle, self._row_ptr, self._out_len_ref, self._out_ptr):
            self._safe_call(-1)  # raises LightGBM's last error
        return self._out[: self._out_len.value]

    def __del__(self) -> None:
        if getattr(self, "_handle", None) and self._handle.value:
            self._lib.LGBM_FastConfigFree(self._handle)
            self._handle = ctypes.c_void_p()
