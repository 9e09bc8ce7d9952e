"""The model registry resource and the name of the champion gate's check.

The gate itself is part of the graph (``models/champion.py``): each ``models/<model>/champion``
asset applies the gate's rule and, only when the rule promotes, moves the alias and
materialises; its ``champion_gate`` check records the verdict and changes nothing.
"""

import dagster as dg

from leadscore_core.registry import GatePolicy, ModelRegistry
from leadscore_core.settings import Settings

CHAMPION_GATE = "champion_gate"


class ModelRegistryResource(dg.ConfigurableResource):
    """The MLflow model registry, and the gate's policy (configurable per deployment; the
    live-evidence fields are ``GatePolicy``'s, from ``LEADSCORE_GATE_*``)."""

    tracking_uri: str
    margin: float = 0.002
    floor_binary: float = 0.60
    floor_multiclass: float = 0.30
    require_live: bool = False
    live_min_requests: int = 500
    live_max_disagreement: float = 0.30
    live_min_lift: float | None = None
    live_min_outcomes: int = 100

    @classmethod
    def live_fields(cls, settings: Settings) -> dict[str, object]:
        """The live-evidence part of the policy, as the settings give it."""
        return {"require_live": settings.gate_require_live,
                "live_min_requests": settings.gate_live_min_requests,
                "live_max_disagreement": settings.gate_live_max_disagreement,
                "live_min_lift": settings.gate_live_min_lift,
                "live_min_outcomes": settings.gate_live_min_outcomes}

    def registry(self) -> ModelRegistry:
        return ModelRegistry(self.tracking_uri)

    def policy(self) -> GatePolicy:
        return GatePolicy(self.margin, self.floor_binary, self.floor_multiclass,
                          self.require_live, self.live_min_requests,
                          self.live_max_disagreement, self.live_min_lift,
                          self.live_min_outcomes)
