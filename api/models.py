"""The served models: where they come from, and how a new champion replaces the old one.

A ``ModelRegistry`` answers two questions: which version does the alias name now, and what
is that version's ``ModelBundle``. ``MlflowRegistry`` asks the MLflow registry (the
embedded default is the SQLite store under ``data/``). ``ModelWatcher`` polls the alias in
the background; when it moves, the new version is loaded and warmed up completely before one
reference in ``ServedModels`` is replaced, so a request in flight keeps the model it started
with and no request ever sees a half-loaded one.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import anyio.to_thread
import numpy as np

from api.schemas import Reason as ApiReason
from leadscore_core.reasons import bundle_logistic_link, sigmoid_link
from leadscore_core.serving import FeatureSpec, ModelBundle

if TYPE_CHECKING:
    from leadscore_core.fastrow import FastRow

log = logging.getLogger("leadscore.api")


class ModelRegistry(Protocol):
    def version_for_alias(self, name: str, alias: str) -> str | None:
        """The version the alias names, or None when the model or the alias does not exist."""

    def load(self, name: str, version: str) -> ModelBundle:
        """The bundle of one registered version."""

    # Optional: ``challenger_version(name) -> str | None``, the version to score in the
    # champion's shadow (a registry without it has no challengers).


class MlflowRegistry:
    """The project's MLflow registry (``leadscore_core.registry``), read-only."""

    def __init__(self, tracking_uri: str):
        from leadscore_core.registry import ModelRegistry as ProjectRegistry

        # A server log is no place for download progress bars.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        self.tracking_uri = tracking_uri
        self.registry = ProjectRegistry(tracking_uri)

    def version_for_alias(self, name: str, alias: str) -> str | None:
        found = self.registry.by_alias(name, alias)
        return None if found is None else str(found.version)

    def challenger_version(self, name: str) -> str | None:
        """The challenger to shadow-score, by the registry's one rule (``is_challenger``)."""
        found = self.registry.challenger(name)
        return None if found is None else str(found.version)

    def load(self, name: str, version: str) -> ModelBundle:
        return self.registry.load_bundle(name, version)


@dataclass
class ServedModel:
    """One loaded version with what every request needs, computed once at load time."""

    name: str
    version: str
    bundle: ModelBundle
    loaded_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        import lightgbm as lgb  # with the first model, not with the API module

        from leadscore_core.fastrow import NORMAL, RAW_SCORE, FastRow

        bundle = self.bundle
        if bundle.booster is not None:
            # A request is one row or a small batch: OpenMP's thread team costs more than it
            # saves, and its spinning threads steal the core the event loop needs. One thread
            # per prediction; several workers (processes) are how the API uses more cores.
            bundle.booster.predict = functools.partial(lgb.Booster.predict, bundle.booster,
                                                       num_threads=1)
        self.specs: list[FeatureSpec] = bundle.encoder.specs
        self.task = bundle.task
        self.classes = list(bundle.classes)
        bounds = bundle.metadata.get("tier_boundaries")
        self.tier_bounds = np.asarray(bounds, dtype=np.float64) if bounds else None
        self.trained_at = bundle.metadata.get("trained_at")
        self.metrics = dict(bundle.metadata.get("metrics") or {})
        self.candidate = (bundle.metadata.get("candidate") or {}).get("chosen", bundle.kind)
        # for reasons in points of the score: raw score -> probability, and the request
        # field behind each export column name a reason carries
        ab = bundle_logistic_link(bundle)
        self.link_ab = ab or (1.0, 0.0)
        self.link = sigmoid_link(*self.link_ab)
        self.field_of = {s.original_name: s.name for s in self.specs}
        # per encoder column: the name a reason carries, its code -> value, the request
        # field whose spelling its text keeps, and whether it decodes to no value whatever
        # the code (a categorical feature without categories)
        self.reason_names = [s.original_name for s in self.specs]
        self.decoders = [s.decode for s in self.specs]
        self.reason_fields = [self.field_of.get(n, n) for n in self.reason_names]
        self.never_valued = np.asarray([s.kind == "categorical" and not s.categories
                                        for s in self.specs], dtype=bool)
        self.categorical = [s.kind == "categorical" for s in self.specs]
        self._proba_row: FastRow | None = None
        if self.task == "binary" and bundle.kind == "lightgbm":
            self._proba_row = FastRow(bundle.booster, RAW_SCORE if bundle.calibration
                                      else NORMAL, len(self.specs), 1)
        # The probability is a function of the raw score, which the contributions already
        # add up to: reuse it rather than walk every tree a second time.
        self._from_raw = self._from_raw_one = None
        # the one explainer, as batch scores use it, with its single-row fast path
        explainer = bundle.explainer
        explainer.single_row_fast_path()
        # reasons built directly as the response's type
        self.explain = functools.partial(explainer.explain, reason=ApiReason)
        link = bundle_logistic_link(bundle)
        if link is not None:
            a, b = link
            self._from_raw = lambda raw: 1.0 / (1.0 + np.exp(-(a * raw + b)))
            self._from_raw_one = lambda raw: _sigmoid(a * raw + b)
        # First LightGBM calls allocate, and the explainer builds its batch look-up with the
        # first batch; pay that here, not on a client's request.
        warm = np.full((2, len(self.specs)), np.nan)
        for rows in (warm[:1], warm):
            self.predict_proba(rows)
            self.explain(rows)

    def score_and_explain(self, X: np.ndarray, top_k: int
                          ) -> tuple[np.ndarray | list[float], list]:
        """Binary models: probabilities and explanations of the rows of ``X``."""
        explanations = self.explain(X, top_k=top_k)
        if self._from_raw is None:
            return self.predict_proba(X), explanations
        if len(explanations) == 1:  # one lead: plain floats, no array round trip
            return [self._from_raw_one(explanations[0].raw_score)], explanations
        return self.probabilities(X, [e.raw_score for e in explanations]), explanations

    def answered_probabilities(self, X: np.ndarray) -> np.ndarray:
        """Binary models: the probabilities these rows are answered with, without the
        reasons: from the trees' raw scores (the leaves reached; the answers' raw scores,
        the sums of their contributions, agree to within a few units of the last bit), else
        from the contributions. Safe off the event loop's thread (no single-row handle)."""
        if self._from_raw is None or len(X) < 2:
            return np.asarray(self.bundle.predict_proba(X), dtype=np.float64)
        explainer = self.bundle.explainer
        if explainer.linear is None and explainer.tree is not None:
            return self._from_raw(explainer.tree.raw_scores(X))
        return self._from_raw(explainer.contributions(X)[:, 0].sum(axis=1))

    def probabilities(self, X: np.ndarray, raws: list[float]) -> np.ndarray:
        """Binary models: the probabilities of the rows of ``X`` whose raw scores (the sums of
        their contributions) are ``raws``."""
        if self._from_raw is None:
            return self.predict_proba(X)
        return self._from_raw(np.asarray(raws, dtype=np.float64))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``bundle.predict_proba``, with one row through the prepared single-row handle."""
        if len(X) != 1 or self._proba_row is None:
            return self.bundle.predict_proba(X)
        value = self._proba_row(X[0])
        if self.bundle.calibration:  # the bundle's Platt scaling of the raw score
            z = self.bundle.calibration["a"] * value + self.bundle.calibration["b"]
            return 1.0 / (1.0 + np.exp(-z))
        return value

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"


class ServedModels:
    """Name -> the version served now. Replacing an entry is one reference assignment."""

    def __init__(self, names: Iterable[str]):
        self.names = tuple(names)
        self._models: dict[str, ServedModel] = {}
        self._challengers: dict[str, ServedModel] = {}  # scored in the shadow, never served
        self.errors: dict[str, str] = {}

    def get(self, name: str) -> ServedModel | None:
        return self._models.get(name)

    def put(self, model: ServedModel) -> None:
        # A new dict, never a mutated one: a reader iterating the old mapping is unaffected.
        self._models = {**self._models, model.name: model}
        self.errors.pop(model.name, None)

    def all(self) -> dict[str, ServedModel]:
        return self._models

    def challenger(self, name: str) -> ServedModel | None:
        return self._challengers.get(name)

    def put_challenger(self, model: ServedModel) -> None:
        self._challengers = {**self._challengers, model.name: model}

    def drop_challenger(self, name: str) -> None:
        if name in self._challengers:
            self._challengers = {k: v for k, v in self._challengers.items() if k != name}

    @property
    def missing(self) -> list[str]:
        return [n for n in self.names if n not in self._models]

    @property
    def ready(self) -> bool:
        return not self.missing


class ModelWatcher:
    """Keeps ``ServedModels`` on the version the alias names, checking every ``interval``."""

    def __init__(self, registry: ModelRegistry, models: ServedModels, alias: str,
                 interval: float, *, shadow: bool = False):
        """``shadow``: also keep each model's challenger loaded (``challenger_version``)."""
        self.registry = registry
        self.models = models
        self.alias = alias
        self.interval = interval
        self.shadow = shadow and hasattr(registry, "challenger_version")

    async def refresh_once(self) -> list[str]:
        """Check every model's alias; load and swap in what moved. Returns what changed."""
        changed = []
        for name in self.models.names:
            if await self._follow_alias(name):
                changed.append(name)
            if self.shadow:
                await self._follow_challenger(name)
        return changed

    async def _follow_alias(self, name: str) -> bool:
        try:
            version = await anyio.to_thread.run_sync(
                self.registry.version_for_alias, name, self.alias)
            current = self.models.get(name)
            if version is None:
                if current is None:
                    self.models.errors[name] = f"no version has the alias {self.alias!r}"
                return False
            if current is not None and current.version == version:
                return False
            served = await anyio.to_thread.run_sync(self._load, name, version)
            self.models.put(served)
            log.info("serving %s (was %s)", served.label,
                     current.label if current else "nothing")
            return True
        except Exception as exc:  # a broken registry or bundle must not stop the others
            self.models.errors[name] = f"{type(exc).__name__}: {exc}"
            log.warning("could not load %s@%s: %s", name, self.alias, exc)
            return False

    async def _follow_challenger(self, name: str) -> None:
        try:
            version = await anyio.to_thread.run_sync(self.registry.challenger_version, name)
            served, current = self.models.get(name), self.models.challenger(name)
            if version is None or served is None or version == served.version:
                if current is not None:
                    self.models.drop_challenger(name)
                    log.info("no shadow scoring of %s any more", current.label)
                return
            if current is not None and current.version == version:
                return
            challenger = await anyio.to_thread.run_sync(self._load, name, version)
            self.models.put_challenger(challenger)
            log.info("scoring %s in the shadow of %s", challenger.label, served.label)
        except Exception as exc:  # shadow scoring is never worth failing the champion for
            log.warning("could not load the challenger of %s: %s", name, exc)

    def _load(self, name: str, version: str) -> ServedModel:
        return ServedModel(name, version, self.registry.load(name, version))

    async def run(self) -> None:
        while True:
            await self.refresh_once()
            await asyncio.sleep(self.interval)


def _sigmoid(z: float) -> float:
    # numpy's 1 / (1 + exp(-z)) is 0.0 where exp overflows; math.exp raises there
    return 1.0 / (1.0 + math.exp(-z)) if z > -709.0 else 0.0
