"""The model registry resource and the name of the champion gate's check.

The gate itself is part of the graph (``models/champion.py``): each ``models/<model>/champion``
asset applies the gate's rule and, only when the rule promotes, moves the alias and
materialises; its ``champion_gate`` check records the verdict and changes nothing.
"""

import dagster as dg

from leadscore_core.registry import GatePolicy, ModelRegistry

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
