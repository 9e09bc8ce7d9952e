"""Resources shared by every stage: settings and the warehouse.

Stage-specific resources (the landing zone, the alert channel, the model registry) live with
their stage and are assembled in ``definitions.py``.
"""

from __future__ import annotations

import os
from typing import TypeVar

import dagster as dg
from dagster_duckdb import DuckDBResource

from leadscore_core.settings import Settings, get_settings
from leadscore_core.warehouse import snapshot_dir, snapshot_reader

# Every asset that writes the warehouse runs in this pool; dagster.yaml limits it to 1
# because DuckDB allows one writing process.
WAREHOUSE_POOL = "duckdb_writer"

T = TypeVar("T")


def env_or(name: str, default: T) -> dg.EnvVar | T:
    """``dg.EnvVar(name)`` when the variable is set, else the embedded default.

    A resource field given an ``EnvVar`` is read from the environment when a run starts and
    the Dagster UI shows the variable's name, never its value: secrets and URLs (a webhook, a
    tracking URI with a password) reach resources this way. With the variable unset, the
    default (a local path, nothing secret) is the value.
    """
    return dg.EnvVar(name) if os.environ.get(name) else default


def published_snapshots(warehouse: DuckDBResource):
    """What the feature stage published from this warehouse, read without the warehouse:
    no writer pool, no file lock (``leadscore_core.warehouse.snapshot_reader``)."""
    return snapshot_reader(snapshot_dir(warehouse.database))


def warehouse_resource(settings: Settings | None = None) -> DuckDBResource:
    settings = settings or get_settings()
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    return DuckDBResource(database=str(settings.warehouse))


class SettingsResource(dg.ConfigurableResource):
    """Project settings as a resource, so tests can point a run at a temporary data folder."""

    data_dir: str = "data"
    lead_profile: str | None = None
    customer_profile: str | None = None

    @classmethod
    def from_env(cls) -> SettingsResource:
        s = get_settings()
        return cls(data_dir=str(s.root), lead_profile=s.lead_profile,
                   customer_profile=s.customer_profile)

    def get(self) -> Settings:
        return Settings(data_dir=self.data_dir, lead_profile=self.lead_profile,
                        customer_profile=self.customer_profile)
