"""The champion gate: one blocking asset check per model asset.

A training registers a new version as ``challenger``. The gate downloads the challenger's
held-out rows, scores both the challenger and the current ``champion`` on exactly those rows
(each with its own encoder, so a champion trained on other categories still scores fairly),
and moves ``champion`` only when the challenger wins by the margin and clears the floor.
When it does not, the champion stays, the check fails, and because the check is blocking
the batch scores downstream are not recomputed with a model nobody promoted.
"""

import dagster as dg

from leadscore_core.registry import (
    CHALLENGER,
    CHAMPION,
    HOLDOUT_ARTIFACT,
    MODELS,
    TAG_LABEL,
    TAG_TASK,
    GatePolicy,
    ModelRegistry,
    decide,
    score_on,
)

CHAMPION_GATE = "champion_gate"


class ModelRegistryResource(dg.ConfigurableResource):
    """The MLflow model registry, and the gate's policy (configurable per deployment)."""

    tracking_uri: str
    margin: float = 0.002
    floor_binary: float = 0.60
    floor_multiclass: float = 0.30

    def registry(self) -> ModelRegistry:
        return ModelRegistry(self.tracking_uri)

    def policy(self) -> GatePolicy:
        return GatePolicy(self.margin, self.floor_binary, self.floor_multiclass)


def champion_gate(model: str) -> dg.AssetChecksDefinition:
    """The blocking gate check of the asset ``models/<model>``."""
    registered = MODELS[model]

    @dg.asset_check(
        asset=dg.AssetKey(["models", model]),
        name=CHAMPION_GATE,
        blocking=True,
        description=f"Promote the new {registered} version to champion only if it beats the "
                    "current champion on the same held-out rows by the margin and clears the "
                    "floor.",
    )
    def _gate(model_registry: ModelRegistryResource) -> dg.AssetCheckResult:
        registry = model_registry.registry()
        challenger = registry.by_alias(model, CHALLENGER)
        if challenger is None:
            return dg.AssetCheckResult(
                passed=False, description=f"{registered} has no challenger version to judge")
        champion = registry.by_alias(model, CHAMPION)
        meta: dict[str, object] = {"registered_model": registered,
                                   "challenger_version": str(challenger.version)}
        if champion is not None and str(champion.version) == str(challenger.version):
            return dg.AssetCheckResult(
                passed=True, metadata={**meta, "champion_version": str(champion.version)},
                description=f"version {challenger.version} is already the champion")

        task, label = challenger.tags[TAG_TASK], challenger.tags[TAG_LABEL]
        holdout = registry.run_frame(challenger.run_id, HOLDOUT_ARTIFACT)
        challenger_score = score_on(registry.load_bundle(model, challenger.version),
                                    holdout, label, task)
        champion_score = None
        if champion is not None:
            champion_score = score_on(registry.load_bundle(model, champion.version),
                                      holdout, label, task)
        decision = decide(task, challenger_score, champion_score, model_registry.policy())
        if decision.promote:
            registry.promote(model, challenger.version, decision)
        else:
            registry.reject(model, challenger.version, decision)
        after = registry.by_alias(model, CHAMPION)
        return dg.AssetCheckResult(
            passed=decision.promote,
            severity=dg.AssetCheckSeverity.ERROR,
            description=decision.reason,
            metadata={
                **meta,
                "previous_champion_version": str(champion.version) if champion else "none",
                "champion_version": str(after.version) if after else "none",
                "holdout_rows": len(holdout),
                "metric": decision.metric,
                f"challenger_{decision.metric}": decision.challenger,
                f"champion_{decision.metric}": (decision.champion
                                                if decision.champion is not None else "none"),
                "margin": decision.margin,
                "floor": decision.floor,
            },
        )

    return _gate


def champion_gates() -> list[dg.AssetChecksDefinition]:
    return [champion_gate(model) for model in MODELS]
