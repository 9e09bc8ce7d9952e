"""An empty MLflow tracking store for a test: a SQLite file copied from one made once per
process. MLflow builds a new file's tables by running every migration, seconds a file; the
copy is the same empty store.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

_template: list[Path] = []


def tracking_store(path: Path) -> str:
    """The ``sqlite:///`` URI of an empty store at ``path`` (its folder made if missing)."""
    if not _template:
        from mlflow import MlflowClient

        folder = Path(tempfile.mkdtemp(prefix="leadscore-mlflow-"))
        atexit.register(shutil.rmtree, folder, True)
        MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
        _template.append(folder / "mlflow.db")
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(_template[0], path)
    return f"sqlite:///{path}"
