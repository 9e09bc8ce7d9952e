"""The package layout as a contract: leadscore_core is shared, api and leadscore_assets are not.

The import contracts live in ``pyproject.toml`` ([tool.importlinter]); this runs them. The API's
start-up imports are checked in a fresh interpreter: what it loads at import decides how fast
``leadscore serve`` and every worker start.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_api_imports_no_framework_and_no_heavy_library_at_start():
    code = ("import json, sys, api.app; print(json.dumps(sorted(m for m in sys.modules "
            "if m.split('.')[0] in {'mlflow', 'lightgbm', 'sklearn', 'dagster', "
            "'leadscore_assets'})))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
