"""The one feature encoder and model bundle shared by training, batch scoring and the API.

A model is only as consistent as the way its inputs are encoded, so there is exactly one
encoder. It turns typed features into a float64 matrix that LightGBM reads directly:

- categorical: the code of the (normalised) value in the sorted training categories; a value
  never seen in training, or a blank, becomes NaN, which LightGBM treats as missing;
- numeric: the float value, NaN when missing, unreadable or infinite;
- boolean: 1.0 / 0.0 by the project's one vocabulary (``leadscore_core.vocabulary``: ``true``/
  ``false``, ``yes``/``no``, ``y``/``n``, ``1``/``0`` ...), NaN when missing or unreadable.

``Encoder.transform_frame`` is the vectorised path for training and batch scoring.
``Encoder.transform_records`` is the per-request path: plain dict and list look-ups, no
DataFrame, because building a DataFrame per request costs milliseconds while LightGBM
predicts a prepared row in microseconds. Both paths share the same value normalisers, so
they give numerically identical matrices.

``ModelBundle`` is what gets published and served: the winning candidate's scorer (a
LightGBM booster, the logistic baseline as lookups, or a blend of both), the encoder, the
task, an optional Platt calibration and metadata. It is stored as the booster's text dump
(when it has one) plus one JSON document (no pickle), and ``LeadscorePyfunc`` wraps it as
an MLflow pyfunc so ``mlflow models serve`` serves the very same registered model (MLflow is
imported only when that wrapper is first used, LightGBM when a bundle is first loaded).

No Dagster imports here: the API imports this module.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from leadscore_core.tiers import quartile_boundaries, tiers_of
from leadscore_core.vocabulary import flag
from leadscore_core.vocabulary import is_missing as _is_missing

if TYPE_CHECKING:
    import lightgbm as lgb

    from leadscore_core.explain import Explainer, LinearPart

Kind = Literal["categorical", "numeric", "boolean"]
Task = Literal["binary", "multiclass"]

BOOSTER_FILE = "booster.txt"
SPEC_FILE = "bundle.json"
BUNDLE_FORMAT = 2
READABLE_FORMATS = (1, 2)
# LightGBM predicts with OpenMP threads; for the small batches served here, waking a thread
# pool costs far more than the trees (milliseconds against ~100 us per row on a busy host).
PREDICT_THREADS = 1

NAN = float("nan")
_MISS = object()
_NUMBERS_OR_NONE = frozenset({float, int, type(None)})


# -- value normalisers (shared by both encoding paths) -----------------------------------------


def normalise_category_value(value: Any) -> str | None:
    """``' Google  Ads'`` -> ``'google ads'``; blank -> None. Matches the cleaning stage."""
    if _is_missing(value):
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        value = int(value)  # a category read as a number: 3.0 and "3" are one category
    return " ".join(str(value).split()).lower() or None


def boolean_value(value: Any) -> float:
    """1.0 / 0.0 by the project's vocabulary (:func:`leadscore_core.vocabulary.flag`), NaN
    when missing or unreadable."""
    read = flag(value)
    return NAN if read is None else 1.0 if read else 0.0


def numeric_value(value: Any) -> float:
    if _is_missing(value):
        return NAN
    if isinstance(value, bool | np.bool_):
        return 1.0 if value else 0.0
    try:
        number = float(value) if isinstance(value, int | float | np.integer | np.floating) \
            else float(str(value).replace(",", "").strip())
    except ValueError:
        return NAN
    return number if math.isfinite(number) else NAN


def arrival_features(created_at: Any) -> dict[str, Any]:
    """``created_hour`` and ``created_weekday`` of a lead arriving at ``created_at``.

    The per-request twin of the columns ``features.leads.lead_features`` adds, so a request
    scored at arrival is encoded like the leads the model learned from.
    """
    ts = pd.Timestamp(created_at) if not _is_missing(created_at) else None
    if ts is None or pd.isna(ts):
        return {"created_hour": None, "created_weekday": None}
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return {"created_hour": ts.hour + ts.minute / 60, "created_weekday": ts.day_name().lower()}


# -- encoder ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureSpec:
    """One model input: its warehouse name, kind, the export's column name, its categories."""

    name: str
    kind: Kind
    original_name: str
    categories: list[str] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("categorical", "numeric", "boolean"):
            raise ValueError(f"feature {self.name!r}: unknown kind {self.kind!r}")

    def decode(self, code: float) -> Any:
        """The human-readable value behind an encoded number (for reasons)."""
        if math.isnan(code):
            return None
        if self.kind == "categorical":
            return self.categories[int(code)] if self.categories else None
        if self.kind == "boolean":
            return bool(code)
        return float(code)


class Encoder:
    """Typed features -> float64 matrix in a fixed column order (see the module docstring)."""

    def __init__(self, specs: Sequence[FeatureSpec]):
        self.specs = list(specs)
        self.names = [s.name for s in self.specs]
        # category -> code look-ups, built once so a request is dict look-ups only
        self._codes: list[dict[str, float] | None] = [
            {c: float(i) for i, c in enumerate(s.categories or [])}
            if s.kind == "categorical" else None
            for s in self.specs
        ]
        # Raw text as sent -> encoded number, per feature: a request's values are mostly the
        # same few spellings, so each is normalised once. Only ``str`` keys are stored (True,
        # 1 and 1.0 are equal dict keys but not the same category); bounded so arbitrary text
        # cannot grow it without limit.
        self._seen: list[dict[Any, float]] = [{None: NAN} for _ in self.specs]
        for j, spec in enumerate(self.specs):
            if spec.kind == "boolean":
                # True, 1 and 1.0 are one key, and one flag (as False, 0 and 0.0 are): a
                # boolean column's bools and numbers are looked up with its text
                self._seen[j].update({True: boolean_value(True), False: boolean_value(False)})
        self._seen_limit = [4 * len(s.categories or ()) + 1024 for s in self.specs]
        self._columns = [(j, s.name, s.kind, self._encode_value(j, True),
                          self._encode_value(j, False)) for j, s in enumerate(self.specs)]
        self._numeric_columns = [j for j, s in enumerate(self.specs) if s.kind == "numeric"]

    @classmethod
    def fit(cls, frame: pd.DataFrame, features: Mapping[str, str],
            original_names: Mapping[str, str] | None = None) -> Encoder:
        """Learn the sorted categories of each categorical feature from a training frame."""
        original_names = original_names or {}
        specs = []
        for name, kind in features.items():
            if name not in frame.columns:
                raise KeyError(f"training frame has no feature column {name!r}")
            categories = None
            if kind == "categorical":
                seen = {normalise_category_value(v) for v in pd.unique(frame[name])}
                categories = sorted(c for c in seen if c is not None)
            specs.append(FeatureSpec(name, kind, original_names.get(name, name), categories))
        return cls(specs)

    @property
    def categorical_indices(self) -> list[int]:
        return [i for i, s in enumerate(self.specs) if s.kind == "categorical"]

    def transform_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Vectorised encoding; a missing column is all-missing (NaN)."""
        out = np.full((len(frame), len(self.specs)), NAN, dtype=np.float64)
        for j, spec in enumerate(self.specs):
            if spec.name not in frame.columns:
                continue
            col = frame[spec.name]
            if spec.kind == "numeric" and pd.api.types.is_numeric_dtype(col) \
                    and not pd.api.types.is_bool_dtype(col):
                values = pd.to_numeric(col, errors="coerce").astype("float64").to_numpy(
                    dtype=np.float64, na_value=NAN)
                out[:, j] = np.where(np.isfinite(values), values, NAN)
                continue
            # Encode each distinct value once with the same function as the request path.
            codes, uniques = pd.factorize(col, use_na_sentinel=True)
            if spec.kind == "categorical":
                lookup = self._codes[j]
                table = [lookup.get(normalise_category_value(u), NAN) for u in uniques]
            elif spec.kind == "boolean":
                table = [boolean_value(u) for u in uniques]
            else:
                table = [numeric_value(u) for u in uniques]
            table_arr = np.append(np.asarray(table, dtype=np.float64), NAN)
            out[:, j] = table_arr[np.where(codes < 0, len(table), codes)]
        return out

    def _encode_value(self, j: int, value: Any) -> float:
        spec = self.specs[j]
        if spec.kind == "categorical":
            key = normalise_category_value(value)
            code = self._codes[j].get(key, NAN) if key is not None else NAN
        elif spec.kind == "numeric":
            code = numeric_value(value)
        else:
            code = boolean_value(value)
        seen = self._seen[j]
        if type(value) is str and len(seen) < self._seen_limit[j]:
            seen[value] = code
        return code

    def transform_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Per-request encoding from plain mappings (feature name -> value).

        Column by column: numbers pass straight through, text is looked up in the per-feature
        table of values already seen, and only a value not seen yet goes through the
        normalisers (the same ones ``transform_frame`` uses).
        """
        n = len(records)
        if n == 1:  # one lead: a row, one pass over the features
            out = np.empty((1, len(self.specs)), dtype=np.float64)
            miss, encode = _MISS, self._encode_value
            record, row, seen = records[0], [], self._seen
            for j, name, kind, true_code, false_code in self._columns:
                v = record.get(name)
                t = type(v)
                if t is str or v is None:
                    code = seen[j].get(v, miss)
                elif t is float or t is int:
                    code = v if kind == "numeric" else miss
                else:
                    code = true_code if v is True else false_code if v is False else miss
                row.append(encode(j, v) if code is miss else code)
            out[0] = row
            for j in self._numeric_columns:  # inf and overflowing ints count as missing
                if not math.isfinite(out[0, j]):
                    out[0, j] = NAN
            return out
        return self.transform_columns({name: [r.get(name) for r in records]
                                       for name in self.names}, n)

    def transform_columns(self, columns: Mapping[str, Sequence[Any]], n: int) -> np.ndarray:
        """``transform_records`` of ``n`` rows given as columns (feature name -> its ``n``
        values; a feature without a column is missing in every row), as a batch of request
        bodies is read field by field."""
        out = np.empty((n, len(self.specs)), dtype=np.float64)
        if n == 0:
            return out
        miss = _MISS
        encode = self._encode_value
        blank = [None] * n
        encoded = []
        for j, name, kind, true_code, false_code in self._columns:
            column = columns.get(name, blank)
            get = self._seen[j].get
            if kind == "numeric" and set(map(type, column)) <= _NUMBERS_OR_NONE:
                values = column  # as they are: numpy reads None as NaN
            elif kind == "numeric":
                values = [v if (t := type(v)) is float or t is int else
                          get(v, miss) if t is str or v is None else
                          true_code if v is True else false_code if v is False else miss
                          for v in column]
            else:
                # text, None (and a boolean column's bools) from the table; the table holds
                # no other keys, so anything else misses and is encoded below
                values = list(map(get, column, repeat(miss)))
            if miss in values:
                for i, v in enumerate(values):
                    if v is miss:
                        values[i] = encode(j, column[i])
            encoded.append(values)
        out = np.array(encoded, dtype=np.float64).T.copy()
        if self._numeric_columns:
            block = out[:, self._numeric_columns]
            if not np.isfinite(block).all():  # inf and overflowing ints count as missing
                out[:, self._numeric_columns] = np.where(np.isfinite(block), block, NAN)
        return out

    def to_json(self) -> list[dict[str, Any]]:
        return [asdict(s) for s in self.specs]

    @classmethod
    def from_json(cls, data: Sequence[Mapping[str, Any]]) -> Encoder:
        return cls([FeatureSpec(**d) for d in data])


# -- bundle -------------------------------------------------------------------------------------


@dataclass
class Reason:
    feature: str  # the export's column name, as people know it
    value: Any
    contribution: float  # log-odds (raw score) contribution


@dataclass
class Explanation:
    base_value: float
    raw_score: float
    explained_class: str | None  # multiclass: the class whose raw score is explained
    reasons_for: list[Reason] = field(default_factory=list)
    reasons_against: list[Reason] = field(default_factory=list)


@dataclass
class ModelBundle:
    """A trained model as served: its scorer, encoder, task, calibration and metadata.

    The scorer is one of three candidate kinds, all giving a raw score in log-odds (per class
    for a multi-class model): ``lightgbm`` (``booster``), ``logistic`` (``linear``, the
    logistic baseline as per-feature lookups) or ``blend`` (both:
    ``tree_weight * booster + (1 - tree_weight) * linear``).
    ``calibration`` is ``None`` or ``{"method": "platt", "a": a, "b": b}`` applied to the raw
    score: ``p = 1 / (1 + exp(-(a * raw + b)))`` (binary only). Platt scaling is monotone, so
    calibration never changes the order of leads.
    ``metadata`` holds ``name``, ``trained_at``, ``metrics``, ``tier_boundaries`` (score
    quartiles, ascending), ``feature_importance``, ``candidate`` (which kind won and by how
    much) and anything else worth keeping.
    """

    booster: lgb.Booster | None
    encoder: Encoder
    task: Task
    classes: list[str]
    calibration: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    linear: LinearPart | None = None
    tree_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.linear is None:
            self.tree_weight = 1.0
        elif self.booster is None:
            self.tree_weight = 0.0
        self._explainer: Explainer | None = None

    @property
    def kind(self) -> str:
        """lightgbm | logistic | blend."""
        if self.linear is None:
            return "lightgbm"
        return "logistic" if self.booster is None else "blend"

    # -- prediction ----------------------------------------------------------------------

    def _predict(self, X: np.ndarray, **kwargs: Any) -> np.ndarray:
        return self.booster.predict(X, num_threads=PREDICT_THREADS, **kwargs)

    def raw_score(self, X: np.ndarray) -> np.ndarray:
        """Log-odds: shape (n,) for a binary model, (n, classes) for a multi-class one."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X.reshape(1, -1)
        raw = None
        if self.booster is not None:
            raw = np.asarray(self._predict(X, raw_score=True), dtype=np.float64)
            raw = raw.reshape(len(X), -1)
        if self.linear is not None:
            linear = self.linear.raw(X)
            raw = linear if raw is None else (self.tree_weight * raw
                                              + (1.0 - self.tree_weight) * linear)
        return raw[:, 0] if self.task == "binary" else raw

    def probability_from_raw(self, raw: np.ndarray) -> np.ndarray:
        """The probabilities a raw score stands for (the calibration, a sigmoid, a softmax)."""
        raw = np.asarray(raw, dtype=np.float64)
        if self.task == "multiclass":
            z = raw - raw.max(axis=-1, keepdims=True)
            e = np.exp(z)
            return e / e.sum(axis=-1, keepdims=True)
        a, b = self.link()
        return 1.0 / (1.0 + np.exp(-(a * raw + b)))

    def link(self) -> tuple[float, float]:
        """(a, b) with probability = sigmoid(a * raw + b), for a binary model."""
        if self.calibration:
            if self.calibration.get("method") != "platt":
                raise ValueError(f"unknown calibration {self.calibration.get('method')!r}")
            return float(self.calibration["a"]), float(self.calibration["b"])
        return 1.0, 0.0

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Binary: probability of the positive class, shape (n,). Multiclass: (n, classes)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X.reshape(1, -1)
        if self.kind == "lightgbm" and (self.task == "multiclass" or not self.calibration):
            return self._predict(X)
        return self.probability_from_raw(self.raw_score(X))

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        return self.predict_proba(self.encoder.transform_frame(frame))

    def predict_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return self.predict_proba(self.encoder.transform_records(records))

    def predicted_class(self, proba: np.ndarray) -> list[str]:
        return [self.classes[i] for i in np.argmax(proba, axis=1)]

    # -- scores and tiers ---------------------------------------------------------------

    @staticmethod
    def score(probability: np.ndarray | float) -> np.ndarray:
        """0-100 score: round(100 x probability)."""
        return np.rint(100.0 * np.asarray(probability, dtype=np.float64)).astype(int)

    def tier(self, scores: np.ndarray | Sequence[float]) -> list[str]:
        """A (top quartile) to D by the bundle's ``tier_boundaries`` (three ascending scores)."""
        bounds = self.metadata.get("tier_boundaries")
        if not bounds:
            raise ValueError("bundle has no tier_boundaries; call set_tier_boundaries first")
        return tiers_of(scores, bounds)

    def set_tier_boundaries(self, scores: np.ndarray | Sequence[float]) -> list[float]:
        """Quartiles of the given (open-lead) scores become the tier boundaries."""
        bounds = quartile_boundaries(scores)
        self.metadata["tier_boundaries"] = bounds
        return bounds

    # -- explanations ------------------------------------------------------------------

    @property
    def explainer(self) -> Explainer:
        """The one explainer (``leadscore_core.explain``), built once per bundle."""
        if self._explainer is None:
            from leadscore_core.explain import Explainer

            self._explainer = Explainer(self)
        return self._explainer

    def explain(self, X: np.ndarray, top_k: int = 3) -> list[Explanation]:
        """Top reasons for and against each row, from the one explainer's per-feature
        contributions: per row ``base_value + sum(contributions) == raw_score`` (log-odds).
        Calibration maps that raw score monotonically to the probability, so the reasons keep
        their direction. Multiclass: the row's predicted class is explained, against that
        class's raw score (softmax input)."""
        return self.explainer.explain(X, top_k=top_k)

    # -- persistence ---------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write ``booster.txt`` (LightGBM text model) and ``bundle.json``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.booster is not None:
            self.booster.save_model(str(directory / BOOSTER_FILE))
        spec = {
            "format": BUNDLE_FORMAT,
            "kind": self.kind,
            "tree_weight": self.tree_weight,
            "linear": self.linear.to_json() if self.linear is not None else None,
            "task": self.task,
            "classes": self.classes,
            "features": self.encoder.to_json(),
            "calibration": self.calibration,
            "metadata": self.metadata,
        }
        (directory / SPEC_FILE).write_text(json.dumps(spec, indent=2, default=_json_default))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> ModelBundle:
        directory = Path(directory)
        spec_path = directory / SPEC_FILE
        if not spec_path.is_file():
            raise FileNotFoundError(f"no model bundle at {directory} (missing {SPEC_FILE})")
        spec = json.loads(spec_path.read_text())
        if spec.get("format") not in READABLE_FORMATS:
            raise ValueError(f"{spec_path}: unsupported bundle format {spec.get('format')!r}")
        kind = spec.get("kind", "lightgbm")  # format 1 held LightGBM models only
        booster = None
        if kind != "logistic":
            import lightgbm as lgb  # on first load: LightGBM imports scikit-learn, seconds

            booster = lgb.Booster(model_file=str(directory / BOOSTER_FILE))
        linear = None
        if kind != "lightgbm":
            from leadscore_core.explain import LinearPart

            linear = LinearPart.from_json(spec["linear"])
        return cls(
            booster=booster,
            linear=linear,
            tree_weight=float(spec.get("tree_weight", 1.0)),
            encoder=Encoder.from_json(spec["features"]),
            task=spec["task"],
            classes=list(spec["classes"]),
            calibration=spec.get("calibration"),
            metadata=spec.get("metadata") or {},
        )

    @property
    def feature_names(self) -> list[str]:
        return self.encoder.names


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# -- MLflow pyfunc -----------------------------------------------------------------------------


def _define_pyfunc() -> type:
    import mlflow.pyfunc

    class LeadscorePyfunc(mlflow.pyfunc.PythonModel):
        """MLflow wrapper: the artifact ``bundle`` is a saved ``ModelBundle`` directory.

        Binary models return ``probability``, ``score`` (0-100) and, when the bundle has tier
        boundaries, ``tier``; multiclass models return ``prediction`` and one
        ``probability_<class>`` column per class.
        """

        ARTIFACT = "bundle"

        def load_context(self, context: Any) -> None:
            self.bundle = ModelBundle.load(context.artifacts[self.ARTIFACT])

        def predict(self, context: Any, model_input: pd.DataFrame,
                    params: dict[str, Any] | None = None) -> pd.DataFrame:
            frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(
                model_input)
            proba = self.bundle.predict_frame(frame)
            if self.bundle.task == "multiclass":
                out = pd.DataFrame({"prediction": self.bundle.predicted_class(proba)})
                for k, cls in enumerate(self.bundle.classes):
                    out[f"probability_{cls}"] = proba[:, k]
                return out
            scores = ModelBundle.score(proba)
            out = pd.DataFrame({"probability": proba, "score": scores})
            if self.bundle.metadata.get("tier_boundaries"):
                out["tier"] = self.bundle.tier(scores)
            return out

    LeadscorePyfunc.__module__ = __name__
    LeadscorePyfunc.__qualname__ = "LeadscorePyfunc"
    return LeadscorePyfunc


def __getattr__(name: str) -> Any:
    # MLflow is imported only by whoever uses the pyfunc wrapper: the API's fast path and
    # batch scoring need the bundle alone, and importing MLflow costs seconds.
    if name == "LeadscorePyfunc":
        cls = _define_pyfunc()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
