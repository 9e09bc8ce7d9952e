"""Live evidence on a challenger: what shadow scoring saw beside the champion.

The API scores the registry's challenger on live requests off the response path and logs its
answer inside each prediction-log entry's outputs, under ``challenger``::

    "outputs": {"probability": 0.41, "score": 41, "tier": "B",
                "challenger": {"version": "5", "probability": 0.57, "score": 57, "tier": "A"}}

From the landed log, per model, champion version and challenger version:

- *agreement*: of the predictions both answered, the share whose tier (risk level, plan)
  would change if the challenger answered instead (``disagreement``);
- *realised lift*, once outcomes arrive: the challenger's realised ROC-AUC minus the
  champion's, on the same predictions; for plan recommendations, the challenger's share of
  leads recommended the plan they then bought minus the champion's (accuracy).

``monitoring/shadow_evidence`` publishes these (``published.shadow_evidence_path``);
the gate (``registry.decide``), ``leadscore models`` and the models page read it. No Dagster
imports: the API and the CLI use this module.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SHADOW_KEY = "challenger"  # the challenger's answer inside a log entry's outputs
ANSWER_KEYS = ("tier", "risk", "plan")  # what a person acts on, per kind of model
METRIC_NAMES = {"roc_auc": "ROC-AUC", "accuracy": "accuracy (the plan bought)"}
PLAN_MODEL = "plan"  # its outcome is a plan, judged by accuracy


def changed(champion: Mapping[str, Any], challenger: Mapping[str, Any]) -> bool:
    """Whether the challenger's answer would change the tier, risk level or plan."""
    return any(champion.get(k) != challenger.get(k) for k in ANSWER_KEYS if k in champion)


@dataclass(frozen=True)
class LiveEvidence:
    """Shadow scoring of one challenger version beside one champion version."""

    model: str  # short name (``lead_conversion``)
    champion_version: str
    challenger_version: str
    requests: int  # predictions both versions answered
    changed: int  # of which the tier (risk level, plan) would change
    judged: int = 0  # of which the outcome is known
    champion_realised: float | None = None  # realised ``metric`` on the judged ones
    challenger_realised: float | None = None
    evaluated_at: str = ""
    metric: str = "roc_auc"  # ``accuracy`` for plan recommendations

    @property
    def disagreement(self) -> float:
        return self.changed / self.requests if self.requests else 0.0

    @property
    def metric_name(self) -> str:
        return METRIC_NAMES.get(self.metric, self.metric)

    @property
    def agreement(self) -> float:
        return 1.0 - self.disagreement

    @property
    def lift(self) -> float | None:
        if self.champion_realised is None or self.challenger_realised is None:
            return None
        return self.challenger_realised - self.champion_realised

    def describe(self) -> str:
        text = (f"{self.requests} shadow-scored requests, {self.disagreement:.1%} would change "
                f"tier")
        if self.lift is not None:
            text += (f", realised {self.metric_name} {self.challenger_realised:.4f} vs "
                     f"{self.champion_realised:.4f} (lift {self.lift:+.4f}) on "
                     f"{self.judged} outcomes")
        elif self.requests:
            text += f", {self.judged} with a known outcome (no lift yet)"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "disagreement": self.disagreement, "lift": self.lift}


def shadow_answers(predictions: pd.DataFrame, short_name: Mapping[str, str]) -> pd.DataFrame:
    """Served prediction rows (``model, version, outputs``; outputs a dict or JSON text) ->
    one row per prediction the challenger also answered:
    ``model, version, challenger_version, changed``."""
    rows = []
    for model, version, outputs in zip(predictions["model"], predictions["version"],
                                       predictions["outputs"], strict=True):
        outputs = json_object(outputs)
        shadow = outputs.get(SHADOW_KEY)
        if not isinstance(shadow, dict) or shadow.get("version") is None:
            continue
        rows.append((short_name.get(model, model), str(version), str(shadow["version"]),
                     changed(outputs, shadow)))
    return pd.DataFrame(rows, columns=["model", "version", "challenger_version", "changed"])


def live_evidence(shadowed: pd.DataFrame, judged: pd.DataFrame, evaluated_at: str = "",
                  judged_plans: pd.DataFrame | None = None) -> list[LiveEvidence]:
    """Evidence per (model, champion version, challenger version).

    ``shadowed``: from :func:`shadow_answers`. ``judged``: served predictions with a known
    ``outcome`` and ``challenger_version`` / ``challenger_probability`` columns (rows without
    a challenger answer are ignored). ``judged_plans``: plan recommendations with the plan
    bought as ``outcome`` and ``plan`` / ``challenger_version`` / ``challenger_plan``."""
    out = []
    has_judged = {"challenger_version", "challenger_probability", "outcome"} <= set(judged)
    has_plans = judged_plans is not None and {
        "challenger_version", "challenger_plan", "plan", "outcome"} <= set(judged_plans)
    for (model, version, challenger), group in shadowed.groupby(
            ["model", "version", "challenger_version"], sort=True):
        champion_realised = challenger_realised = None
        n_judged = 0
        if model == PLAN_MODEL:
            if has_plans:
                same = _same_pair(judged_plans, model, version, challenger, "challenger_plan")
                n_judged = len(same)
                if n_judged:
                    bought = same["outcome"].astype(str).str.casefold()
                    champion_realised = float(
                        (same["plan"].astype(str).str.casefold() == bought).mean())
                    challenger_realised = float(
                        (same["challenger_plan"].astype(str).str.casefold() == bought).mean())
        elif has_judged:
            same = _same_pair(judged, model, version, challenger, "challenger_probability")
            n_judged = len(same)
            y = same["outcome"].astype(bool).to_numpy()
            if n_judged and len(np.unique(y)) == 2:
                from sklearn.metrics import roc_auc_score

                champion_realised = float(roc_auc_score(y, same["probability"].astype(float)))
                challenger_realised = float(roc_auc_score(
                    y, same["challenger_probability"].astype(float)))
        out.append(LiveEvidence(model, version, challenger, len(group),
                                int(group["changed"].sum()), n_judged, champion_realised,
                                challenger_realised, evaluated_at,
                                "accuracy" if model == PLAN_MODEL else "roc_auc"))
    return out


def _same_pair(judged: pd.DataFrame, model: str, version: str, challenger: str,
               answer: str) -> pd.DataFrame:
    """The judged predictions of this champion version that this challenger also answered."""
    same = judged[(judged["model"] == model) & (judged["version"].astype(str) == version)
                  & (judged["challenger_version"].astype("string") == challenger)]
    return same[same[answer].notna()]


def evidence_json(evidence: Iterable[LiveEvidence]) -> str:
    return json.dumps([e.as_dict() for e in evidence], indent=1)


def read_evidence(path: Path) -> list[LiveEvidence]:
    """The published evidence ([] when none was published yet)."""
    try:
        rows = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return []
    fields = LiveEvidence.__dataclass_fields__
    return [LiveEvidence(**{k: v for k, v in row.items() if k in fields}) for row in rows]


def evidence_for(evidence: Iterable[LiveEvidence], model: str, champion_version: str | None,
                 challenger_version: str | None) -> LiveEvidence | None:
    """The evidence on exactly this pair of versions, if any."""
    for e in evidence:
        if (e.model == model and e.champion_version == str(champion_version)
                and e.challenger_version == str(challenger_version)):
            return e
    return None


def json_object(value: object) -> dict:
    """A log field as a dict: decoded when it is JSON text, {} when it is not an object."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            loaded = json.loads(value)
        except ValueError:
            return {}
        return loaded if isinstance(loaded, dict) else {}
    return {}


# -- the gate's evidence beyond the held-out rows --------------------------------------------


@dataclass(frozen=True)
class GateEvidence:
    """What the gate, ``leadscore models`` and the models page show beside the held-out
    figures: the live evidence on the challenger, and the champion's latest label-free
    performance estimate (``monitoring/<model>_estimated_performance``), where there are any."""

    live: LiveEvidence | None
    estimate: dict[str, Any] | None  # the saved estimate of this champion version

    def metadata(self) -> dict[str, Any]:
        """Flat figures for the champion asset's metadata."""
        out: dict[str, Any] = {}
        if self.live is not None:
            live = self.live
            out.update({"live/requests": live.requests, "live/tier_changes": live.changed,
                        "live/disagreement": round(live.disagreement, 4),
                        "live/outcomes": live.judged})
            if live.lift is not None:
                out.update({"live/champion_roc_auc": live.champion_realised,
                            "live/challenger_roc_auc": live.challenger_realised,
                            "live/lift": live.lift})
        if self.estimate:
            for metric, figures in (self.estimate.get("window") or {}).items():
                for part in ("value", "low", "high"):
                    value = (figures or {}).get(part)
                    if isinstance(value, int | float) and np.isfinite(value):
                        out[f"champion_estimated/{metric}/{part}"] = float(value)
            out["champion_estimated/drop"] = bool(self.estimate.get("estimated_drop"))
            out["champion_estimated/window_rows"] = int(self.estimate.get("window_rows") or 0)
        return out

    def lines(self) -> list[str]:
        """For a person (``leadscore models``)."""
        from leadscore_core.estimation import summary_lines

        out = []
        if self.live is not None:
            out.append(f"  live v{self.live.challenger_version} vs v{self.live.champion_version}: "
                       f"{self.live.describe()}")
        if self.estimate:
            out.append(f"  estimate of champion v{self.estimate.get('champion_version')} "
                       f"({self.estimate.get('evaluated_at', '')}):")
            out += [f"  {line}" for line in summary_lines(self.estimate)]
        return out


def gate_evidence(monitoring_dir: Path, model: str, champion_version: str | None,
                  challenger_version: str | None) -> GateEvidence:
    """The published live evidence on this pair of versions and the estimate of this
    champion (an estimate of an earlier champion is left out)."""
    from leadscore_core.published import estimated_summary_path, shadow_evidence_path

    live = None
    if champion_version is not None and challenger_version is not None:
        live = evidence_for(read_evidence(shadow_evidence_path(monitoring_dir)), model,
                            champion_version, challenger_version)
    estimate = None
    with contextlib.suppress(FileNotFoundError, ValueError):
        estimate = json.loads(estimated_summary_path(monitoring_dir, model).read_text())
    if estimate is not None and str(estimate.get("champion_version")) != str(champion_version):
        estimate = None
    return GateEvidence(live, estimate)
