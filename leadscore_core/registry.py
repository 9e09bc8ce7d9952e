"""The MLflow model registry as leadscore uses it: challenger, champion, rollback.

Every training registers a new version of its registered model and gives it the alias
``challenger``. The champion asset (``models/<model>/champion``) re-scores the current
``champion`` on the challenger's held-out rows and moves ``champion`` only when the
challenger is better by a margin and clears an absolute floor (``decide``). What the API
serves is always exactly the version the alias ``champion`` points at.

The order of champions is kept as a tag on the registered model (``leadscore.champion_history``)
so a rollback can walk back more than one step; the alias ``previous-champion`` mirrors the
entry before the current one, so people browsing the MLflow UI see it without reading tags.

Each run also stores ``holdout.parquet`` (the held-out rows with their label) and
``reference.parquet`` (a sample of the training features, for drift) at the root of its
artifacts.

No Dagster imports here: the CLI and the API use this module too. MLflow is imported only
when a registry or an experiment is first opened.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from leadscore_core.serving import ModelBundle
    from leadscore_core.shadow import LiveEvidence

# Short model name (asset key suffix) -> registered model name.
MODELS: dict[str, str] = {
    "lead_conversion": "leadscore-lead-conversion",
    "plan": "leadscore-plan",
    "activity_churn": "leadscore-activity-churn",
    "snapshot_churn": "leadscore-snapshot-churn",
}
CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS = "previous-champion"
HISTORY_TAG = "leadscore.champion_history"
EXPERIMENT = "leadscore"

# The metric the gate compares, per task.
PRIMARY_METRIC = {"binary": "roc_auc", "multiclass": "macro_f1"}

HOLDOUT_ARTIFACT = "holdout.parquet"
REFERENCE_ARTIFACT = "reference.parquet"
MODEL_ARTIFACT = "model"  # name of the pyfunc model logged in each run

# Version tags written at training time, read by the gate and by ``leadscore models``.
TAG_TASK = "leadscore.task"
TAG_LABEL = "leadscore.label"
TAG_CANDIDATE = "leadscore.candidate"  # lightgbm | logistic | blend: which candidate won
TAG_CANDIDATE_REASON = "leadscore.candidate_reason"
TAG_GATE = "leadscore.gate"
TAG_PROFILE = "leadscore.profile"  # the source profile the training rows were typed with
TAG_GATE_REASON = "leadscore.gate_reason"
GATE_PROMOTED, GATE_REJECTED, GATE_WAITING = "promoted", "rejected", "waiting"


def is_challenger(candidate: ModelVersion | None, champion: ModelVersion | None) -> bool:
    """The one rule for "a challenger exists": the alias ``challenger`` names a version newer
    than the champion that the gate has not promoted (waiting for live evidence, rejected, or
    not judged yet). The API scores such a version in the shadow of the champion; a version
    that was promoted once and rolled back from is not a challenger any more."""
    if candidate is None or champion is None:
        return False
    if int(candidate.version) <= int(champion.version):
        return False
    return (candidate.tags or {}).get(TAG_GATE) != GATE_PROMOTED


def registered_name(model: str) -> str:
    """``lead_conversion``, ``lead-conversion`` or ``leadscore-lead-conversion`` -> the
    registered name."""
    if model in MODELS.values():
        return model
    key = model.replace("-", "_")
    if key in MODELS:
        return MODELS[key]
    raise KeyError(f"unknown model {model!r}; known: {', '.join(MODELS)}")


def ensure_experiment(tracking_uri: str, artifact_root: Path, name: str = EXPERIMENT) -> str:
    """Create the experiment with its artifacts under ``artifact_root`` unless it exists.

    MLflow would otherwise put the artifacts of a SQLite-backed store in ``./mlruns`` relative
    to whatever directory the process started in. A tracking server (``http(s)://``) keeps
    its own default, the artifacts it proxies (``mlflow server --serve-artifacts``).
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if not tracking_uri.startswith(("http://", "https://")):
        artifact_root.mkdir(parents=True, exist_ok=True)
        location = artifact_root.resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # created concurrently by another step process
        return client.get_experiment_by_name(name).experiment_id


# -- the gate's decision ---------------------------------------------------------------------


@dataclass(frozen=True)
class GatePolicy:
    """Promote only when the challenger beats the champion by ``margin`` and clears a floor;
    with ``require_live``, also only on enough live evidence from shadow scoring.

    Live evidence (``leadscore_core.shadow.LiveEvidence``, off by default): at least
    ``live_min_requests`` predictions scored by both, of which at most
    ``live_max_disagreement`` would change tier (risk level, plan); with ``live_min_lift``
    set, also at least ``live_min_outcomes`` of them with a known outcome and the
    challenger's realised metric at least ``live_min_lift`` above the champion's on them.
    """

    margin: float = 0.002
    floor_binary: float = 0.60  # ROC-AUC
    floor_multiclass: float = 0.30  # macro-F1
    require_live: bool = False
    live_min_requests: int = 500
    live_max_disagreement: float = 0.30
    live_min_lift: float | None = None
    live_min_outcomes: int = 100

    def floor(self, task: str) -> float:
        return self.floor_binary if task == "binary" else self.floor_multiclass


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    metric: str
    challenger: float
    champion: float | None
    margin: float
    floor: float
    # not promoted only for want of live evidence (yet): the challenger stays in the shadow
    waiting: bool = False
    live: str = ""  # the live evidence in words, when there is any

    @property
    def improvement(self) -> float | None:
        return None if self.champion is None else self.challenger - self.champion


def decide(task: str, challenger: float, champion: float | None,
           policy: GatePolicy, live: LiveEvidence | None = None) -> GateDecision:
    """The gate's rule, on scores measured on the same held-out rows, and (when the policy
    requires it) on the live evidence of shadow scoring."""
    metric = PRIMARY_METRIC[task]
    floor = policy.floor(task)
    said = live.describe() if live is not None else ""

    def verdict(promote: bool, reason: str, waiting: bool = False) -> GateDecision:
        return GateDecision(promote, reason, metric, challenger, champion, policy.margin,
                            floor, waiting, said)

    if not np.isfinite(challenger) or challenger < floor:
        return verdict(False, f"challenger {metric} {challenger:.4f} is below the floor "
                              f"{floor:.4f}")
    if champion is None:
        return verdict(True, f"no champion yet; challenger {metric} {challenger:.4f} clears the "
                             f"floor {floor:.4f}")
    if challenger < champion + policy.margin:
        return verdict(False, f"challenger {metric} {challenger:.4f} does not beat champion "
                              f"{champion:.4f} by the margin {policy.margin} "
                              f"({challenger - champion:+.4f})")
    held_out = (f"challenger {metric} {challenger:.4f} beats champion {champion:.4f} by "
                f"{challenger - champion:+.4f} (margin {policy.margin})")
    if not policy.require_live:
        return verdict(True, held_out)
    requests = live.requests if live is not None else 0
    if requests < policy.live_min_requests:
        return verdict(False, f"{held_out}; waiting for live evidence: {requests} of "
                              f"{policy.live_min_requests} shadow-scored requests", True)
    if live.disagreement > policy.live_max_disagreement:
        return verdict(False, f"{held_out}; but live tier changes {live.disagreement:.1%} "
                              f"exceed {policy.live_max_disagreement:.1%} ({said})")
    if policy.live_min_lift is not None:
        if live.lift is None or live.judged < policy.live_min_outcomes:
            return verdict(False, f"{held_out}; waiting for outcomes: {live.judged} of "
                                  f"{policy.live_min_outcomes} shadow-scored requests have "
                                  "one", True)
        if live.lift < policy.live_min_lift:
            return verdict(False, f"{held_out}; but the realised lift {live.lift:+.4f} is "
                                  f"below {policy.live_min_lift:+.4f} ({said})")
    return verdict(True, f"{held_out}; live evidence holds ({said})")


def outcome(decision: GateDecision, challenger_version: str,
            champion_version: str | None) -> str:
    """The verdict in one line, naming the versions: ``promoted v4: ...``, ``kept v3: ...``."""
    d, metric = decision, decision.metric
    live = f"; live: {d.live}" if d.live else ""
    if decision.promote:
        if champion_version is None:
            return (f"promoted v{challenger_version}: the first champion, {metric} "
                    f"{d.challenger:.4f} clears the floor {d.floor:.4f}")
        return (f"promoted v{challenger_version}: {metric} {d.challenger:.4f} >= "
                f"{d.champion:.4f} + margin {d.margin:g} (was v{champion_version}){live}")
    below_floor = not np.isfinite(d.challenger) or d.challenger < d.floor
    kept = f"kept v{champion_version}" if champion_version else "no champion"
    if below_floor:
        return (f"{kept}: challenger v{challenger_version} {metric} {d.challenger:.4f} is "
                f"below the floor {d.floor:.4f}")
    if d.champion is not None and d.challenger >= d.champion + d.margin:  # held by live
        return f"{kept} (challenger v{challenger_version}): {d.reason}"
    return (f"{kept}: {metric} {d.challenger:.4f} < {d.champion:.4f} + margin {d.margin:g} "
            f"(challenger v{challenger_version}){live}")


def score_on(bundle: ModelBundle, holdout: pd.DataFrame, label: str, task: str) -> float:
    """The gate's metric for ``bundle`` on ``holdout`` (each model encodes with its own encoder)."""
    from sklearn.metrics import f1_score, roc_auc_score

    y = holdout[label]
    proba = np.asarray(bundle.predict_proba(bundle.encoder.transform_frame(holdout)))
    if task == "binary":
        positive = proba[:, -1] if proba.ndim == 2 else proba
        y = y.astype(bool).to_numpy()
        if len(np.unique(y)) < 2:
            return float("nan")
        return float(roc_auc_score(y, positive))
    classes = np.asarray(bundle.classes)
    predicted = classes[np.argmax(proba, axis=1)]
    return float(f1_score(y.astype(str), predicted.astype(str), average="macro"))


# -- the registry ----------------------------------------------------------------------------


@dataclass
class VersionInfo:
    """One registered version as ``leadscore models`` shows it."""

    name: str
    version: str
    aliases: list[str]
    run_id: str
    created: datetime
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


class RollbackError(RuntimeError):
    """There is no earlier champion to go back to."""


class ModelRegistry:
    """Aliases, history and artifacts of leadscore's registered models."""

    def __init__(self, tracking_uri: str) -> None:
        # MLflow is imported here, where the registry is first read, not when this module
        # loads: the API imports the model list above at start, and MLflow costs seconds.
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        self.tracking_uri = tracking_uri
        self.client: MlflowClient = MlflowClient(tracking_uri=tracking_uri,
                                                 registry_uri=tracking_uri)
        self._missing = MlflowException

    # -- aliases ---------------------------------------------------------------------------

    def by_alias(self, model: str, alias: str) -> ModelVersion | None:
        try:
            return self.client.get_model_version_by_alias(registered_name(model), alias)
        except self._missing:
            return None

    def aliases(self, model: str) -> dict[str, str]:
        """alias -> version of a registered model ({} when it does not exist yet)."""
        try:
            registered = self.client.get_registered_model(registered_name(model))
        except self._missing:
            return {}
        return {alias: str(version) for alias, version in registered.aliases.items()}

    def history(self, model: str) -> list[str]:
        """Versions that have been champion, oldest first, ending with the current one."""
        name = registered_name(model)
        try:
            registered = self.client.get_registered_model(name)
        except self._missing:
            return []
        raw = registered.tags.get(HISTORY_TAG, "")
        history = [v for v in raw.split(",") if v]
        champion = registered.aliases.get(CHAMPION)
        champion = str(champion) if champion is not None else None
        # An alias moved by hand in the MLflow UI wins over the recorded history.
        if champion and (not history or history[-1] != champion):
            history.append(champion)
        return history

    def challenger(self, model: str) -> ModelVersion | None:
        """The challenger version (``is_challenger``), or None when there is none."""
        candidate = self.by_alias(model, CHALLENGER)
        if candidate is None:
            return None
        return candidate if is_challenger(candidate, self.by_alias(model, CHAMPION)) else None

    def set_challenger(self, model: str, version: str | int) -> None:
        self.client.set_registered_model_alias(registered_name(model), CHALLENGER, str(version))

    def promote(self, model: str, version: str | int,
                decision: GateDecision | None = None) -> None:
        """Make ``version`` the champion; the one it replaces becomes ``previous-champion``."""
        name, version = registered_name(model), str(version)
        history = [v for v in self.history(name) if v != version] + [version]
        self._write_history(name, history)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        self.client.set_model_version_tag(name, version, "leadscore.promoted_at", now)
        if decision is not None:
            self._tag_decision(name, version, GATE_PROMOTED, decision)

    def reject(self, model: str, version: str | int, decision: GateDecision) -> None:
        """Record a verdict that keeps the champion: rejected, or waiting for live evidence."""
        self._tag_decision(registered_name(model), str(version),
                           GATE_WAITING if decision.waiting else GATE_REJECTED, decision)

    def rollback(self, model: str) -> tuple[str, str]:
        """Move ``champion`` back to the previous champion; returns (from, to) versions."""
        name = registered_name(model)
        history = self.history(name)
        if len(history) < 2:
            raise RollbackError(f"{name}: no previous champion to roll back to "
                                f"(champion history: {history or 'empty'})")
        current, history = history[-1], history[:-1]
        self._write_history(name, history)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        self.client.set_model_version_tag(name, current, "leadscore.rolled_back_at", now)
        return current, history[-1]

    def _write_history(self, name: str, history: list[str]) -> None:
        self.client.set_registered_model_tag(name, HISTORY_TAG, ",".join(history))
        self.client.set_registered_model_alias(name, CHAMPION, history[-1])
        if len(history) >= 2:
            self.client.set_registered_model_alias(name, PREVIOUS, history[-2])
        elif PREVIOUS in self.aliases(name):
            self.client.delete_registered_model_alias(name, PREVIOUS)

    def _tag_decision(self, name: str, version: str, outcome: str,
                      decision: GateDecision) -> None:
        self.client.set_model_version_tag(name, version, TAG_GATE, outcome)
        self.client.set_model_version_tag(name, version, TAG_GATE_REASON, decision.reason)

    # -- listing ---------------------------------------------------------------------------

    def versions(self, model: str) -> list[VersionInfo]:
        """Every version of a registered model, newest first, with aliases and run metrics."""
        name = registered_name(model)
        aliases_of: dict[str, list[str]] = {}
        for alias, version in self.aliases(name).items():
            aliases_of.setdefault(str(version), []).append(alias)
        out = []
        for mv in self.client.search_model_versions(f"name='{name}'"):
            metrics = self.client.get_run(mv.run_id).data.metrics if mv.run_id else {}
            out.append(VersionInfo(
                name=name,
                version=str(mv.version),
                aliases=sorted(aliases_of.get(str(mv.version), [])),
                run_id=mv.run_id or "",
                created=datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC),
                metrics=dict(metrics),
                tags=dict(mv.tags),
            ))
        return sorted(out, key=lambda v: int(v.version), reverse=True)

    # -- artifacts -------------------------------------------------------------------------

    def version(self, model: str, version_or_alias: str | int) -> ModelVersion:
        name = registered_name(model)
        version_or_alias = str(version_or_alias)
        if version_or_alias.isdigit():
            return self.client.get_model_version(name, version_or_alias)
        return self.client.get_model_version_by_alias(name, version_or_alias)

    def load_bundle(self, model: str, version_or_alias: str | int = CHAMPION) -> ModelBundle:
        """The ``ModelBundle`` inside a registered version's pyfunc model."""
        from leadscore_core.serving import SPEC_FILE, ModelBundle

        mv = self.version(model, version_or_alias)
        with tempfile.TemporaryDirectory() as tmp:
            # The store resolves the version to its artifact location; a ``models:/`` URI
            # would be resolved through MLflow's process-global tracking URI instead.
            location = self.client.get_model_version_download_uri(mv.name, mv.version)
            local = Path(self._download(location, tmp))
            # pyfunc copies each artifact under ``artifacts/``; the bundle is the directory
            # holding the bundle's JSON spec, wherever MLflow nested it.
            spec = next(local.rglob(SPEC_FILE), None)
            if spec is None:
                raise FileNotFoundError(f"{mv.name} version {mv.version}: no model bundle in "
                                        f"its artifacts")
            return ModelBundle.load(spec.parent)

    def run_frame(self, run_id: str, artifact: str) -> pd.DataFrame:
        """A Parquet artifact of a run (``holdout.parquet``, ``reference.parquet``)."""
        with tempfile.TemporaryDirectory() as tmp:
            path = self._download(None, tmp, run_id=run_id, artifact_path=artifact)
            return pd.read_parquet(path)

    def _download(self, uri: str | None, dst: str, **kwargs: str) -> str:
        import mlflow.artifacts

        return mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=dst, tracking_uri=self.tracking_uri,
            registry_uri=self.tracking_uri, **kwargs)
