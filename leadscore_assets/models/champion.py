"""Promotion as part of the graph: one ``models/<model>/champion`` asset per model.

A training (``models/<model>``) registers a new version as ``challenger``. The champion asset
downloads the challenger's held-out rows, scores the challenger and the current ``champion``
on exactly those rows (each with its own encoder, so a champion trained on other categories
still scores fairly) and applies the gate's rule (``registry.decide``: win by the margin and
clear the floor). Only when the rule promotes does it move the alias ``champion`` and
materialise, so the batch scores and drift reports downstream run for the new champion.

A challenger that loses is a normal outcome, not a failure: the asset is not materialised
(downstream steps are skipped, the run stays green), the verdict is recorded as an
observation of the champion asset and as its ``champion_gate`` check, whose description says
why ("kept v3: roc_auc 0.8420 < 0.8460 + margin 0.002 (challenger v4)"). The check records;
it never changes the registry. It warns only when no champion exists at all (the first
training did not clear the floor), because then nothing can be scored.

Beside the held-out figures the verdict carries the live evidence of shadow scoring on this
challenger (``leadscore_core.shadow``: tier changes, realised lift) and the champion's latest
performance estimate, where they exist. With ``LEADSCORE_GATE_REQUIRE_LIVE`` the rule also
needs that live evidence; a challenger still short of it is tagged ``waiting`` and judged again
by ``shadow_gate_sensor`` as the evidence grows.
"""

from collections.abc import Iterator

import dagster as dg

from leadscore_assets.models.checks import CHAMPION_GATE, ModelRegistryResource
from leadscore_assets.resources import SettingsResource
from leadscore_core.registry import (
    CHALLENGER,
    CHAMPION,
    HOLDOUT_ARTIFACT,
    MODELS,
    TAG_CANDIDATE,
    TAG_LABEL,
    TAG_TASK,
    decide,
    outcome,
    score_on,
)
from leadscore_core.shadow import gate_evidence

GROUP = "models"


def champion_key(model: str) -> dg.AssetKey:
    return dg.AssetKey(["models", model, "champion"])


def champion_asset(model: str) -> dg.AssetsDefinition:
    registered = MODELS[model]
    key = champion_key(model)

    @dg.asset(
        key=key,
        deps=[dg.AssetKey(["models", model])],
        group_name=GROUP,
        kinds={"mlflow"},
        output_required=False,
        check_specs=[dg.AssetCheckSpec(
            CHAMPION_GATE, asset=key,
            description=f"The gate's verdict on the latest {registered} challenger: promoted, "
                        "or kept the champion, and why.")],
        description=f"The {registered} version the registry calls champion (what the API and "
                    "the batch scores serve). Materialised only when the gate's rule promotes "
                    "the challenger: it beats the champion on the challenger's held-out rows "
                    "by the margin and clears the floor.",
    )
    def _champion(context: dg.AssetExecutionContext, model_registry: ModelRegistryResource,
                  settings: SettingsResource
                  ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        registry = model_registry.registry()
        challenger = registry.by_alias(model, CHALLENGER)
        champion = registry.by_alias(model, CHAMPION)
        meta: dict[str, object] = {"registered_model": registered}
        if challenger is None:
            yield dg.AssetCheckResult(
                passed=champion is not None, severity=dg.AssetCheckSeverity.WARN,
                check_name=CHAMPION_GATE, metadata=meta,
                description=f"{registered} has no challenger version to judge")
            return
        meta.update({"challenger_version": str(challenger.version),
                     "candidate": challenger.tags.get(TAG_CANDIDATE, "lightgbm")})
        if champion is not None and str(champion.version) == str(challenger.version):
            description = f"v{champion.version} is already the champion"
            context.log_event(dg.AssetObservation(asset_key=key, description=description,
                                                  metadata=meta))
            yield dg.AssetCheckResult(passed=True, check_name=CHAMPION_GATE,
                                      description=description, metadata=meta)
            return

        task, label = challenger.tags[TAG_TASK], challenger.tags[TAG_LABEL]
        holdout = registry.run_frame(challenger.run_id, HOLDOUT_ARTIFACT)
        challenger_score = score_on(registry.load_bundle(model, challenger.version),
                                    holdout, label, task)
        champion_score = None
        if champion is not None:
            champion_score = score_on(registry.load_bundle(model, champion.version),
                                      holdout, label, task)
        evidence = gate_evidence(settings.get().root / "monitoring", model,
                                 str(champion.version) if champion is not None else None,
                                 str(challenger.version))
        decision = decide(task, challenger_score, champion_score, model_registry.policy(),
                          evidence.live)
        description = outcome(decision, str(challenger.version),
                              str(champion.version) if champion is not None else None)
        meta.update({
            "previous_champion_version": str(champion.version) if champion else "none",
            "holdout_rows": len(holdout),
            "metric": decision.metric,
            f"challenger_{decision.metric}": decision.challenger,
            f"champion_{decision.metric}": (decision.champion
                                            if decision.champion is not None else "none"),
            "margin": decision.margin,
            "floor": decision.floor,
            "verdict": description,
            "live_evidence_required": model_registry.require_live,
            **evidence.metadata(),
        })
        if decision.promote:
            registry.promote(model, challenger.version, decision)
            meta["champion_version"] = str(challenger.version)
            context.log.info(f"{registered}: {description}")
            yield dg.MaterializeResult(metadata=meta, check_results=[dg.AssetCheckResult(
                passed=True, check_name=CHAMPION_GATE, description=description,
                metadata=meta)])
            return
        registry.reject(model, challenger.version, decision)
        meta["champion_version"] = str(champion.version) if champion else "none"
        context.log.info(f"{registered}: {description}")
        context.log_event(dg.AssetObservation(asset_key=key, description=description,
                                              metadata=meta))
        yield dg.AssetCheckResult(passed=champion is not None,
                                  severity=dg.AssetCheckSeverity.WARN,
                                  check_name=CHAMPION_GATE, description=description,
                                  metadata=meta)

    return _champion


champion_assets = [champion_asset(model) for model in MODELS]
