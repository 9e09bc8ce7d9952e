"""MLflow tracking for the model assets: dagster-mlflow's run handling as a ConfigurableResource.

dagster-mlflow (0.29) ships its tracking only as a legacy ``@resource`` (``mlflow_tracking``);
its ``MlFlow`` class does the work (one MLflow run per Dagster run, found again by the
``dagster_run_id`` tag from every step process) and reads its settings from the resource
config. ``MlflowTracking`` declares the same settings as typed fields, so the tracking URI can
be a ``dg.EnvVar`` (the UI shows the variable's name, not a URI that may hold a password), and
runs that same ``MlFlow`` set-up when a run's step starts.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import mlflow
from dagster_mlflow.resources import MlFlow
from pydantic import Field, PrivateAttr

from leadscore_assets.resources import env_or
from leadscore_core.registry import EXPERIMENT, ensure_experiment
from leadscore_core.settings import Settings


class MlflowTracking(dg.ConfigurableResource):
    """One MLflow run per Dagster run, in ``experiment_name``, with artifacts under
    ``artifact_root``.

    dagster-mlflow would create a missing experiment with MLflow's default artifact location,
    which for a SQLite store is ``./mlruns`` under whatever directory the process started in;
    the experiment is created here first. The run is ended on teardown, so a later Dagster run
    in the same process (tests, ``dg.materialize``) starts its own MLflow run instead of
    resuming this one.
    """

    # the field names are dagster-mlflow's own config keys: ``MlFlow`` reads them
    experiment_name: str = EXPERIMENT
    mlflow_tracking_uri: str = Field(description="MLflow tracking and registry URI")
    artifact_root: str = Field(description="Folder of the experiment's artifacts (when new)")

    _tracking: MlFlow | None = PrivateAttr(default=None)

    @classmethod
    def from_settings(cls, settings: Settings) -> MlflowTracking:
        return cls(mlflow_tracking_uri=env_or("LEADSCORE_MLFLOW_TRACKING_URI",
                                              settings.mlflow_uri),
                   artifact_root=str(settings.mlflow_artifacts))

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        ensure_experiment(self.mlflow_tracking_uri, Path(self.artifact_root),
                          self.experiment_name)
        self._tracking = MlFlow(context)  # starts (or resumes) the Dagster run's MLflow run
        # Versions are registered in the same store the runs are tracked in, whatever registry
        # an earlier user of this process pointed MLflow's global registry URI at.
        mlflow.set_registry_uri(self.mlflow_tracking_uri)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._tracking is not None:
            self._tracking.cleanup_on_error()
        if mlflow.active_run() is not None:
            mlflow.end_run()

    def active_run(self) -> mlflow.ActiveRun | None:
        """The Dagster run's MLflow run (each model logs a nested child run under it)."""
        return mlflow.active_run()
