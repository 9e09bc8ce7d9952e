"""The package layout as a contract: leadscore_core is shared, api and leadscore_assets are not.

The import contracts live in ``pyproject.toml`` ([tool.importlinter]); this runs them. The API's
start-up imports are checked in a fresh interpreter: what it loads at import decides how fast
``leadscore serve`` and every worker start.
"""

from __future__ import annotations

import ast
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


def test_no_test_module_imports_another():
    """Shared code lives in tests/support and fixtures in conftest.py: a test module imported
    by another would run under two names."""
    tests = ROOT / "tests"
    modules = {p.stem for p in tests.glob("test_*.py")} | {"conftest"}
    offenders = []
    for path in sorted(tests.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                parts = name.split(".")
                if parts[-1] in modules or (parts[0] == "tests" and parts[1:2] and
                                            parts[1] in modules):
                    offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert offenders == []


def test_every_asset_key_is_mapped_to_the_module_that_builds_it():
    """docs/assets.md: one row per asset key, naming the module and function that build it."""
    import inspect

    import dagster as dg

    from leadscore_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    actual = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key).assets_def.node_def
        if isinstance(node, dg.GraphDefinition):  # graph-backed: the op that does the work
            [node] = list(node.iterate_op_defs())
        fn = node.compute_fn.decorated_fn
        actual[key.to_user_string()] = (inspect.getmodule(fn).__name__, fn.__name__)
    documented = {}
    for line in (ROOT / "docs" / "assets.md").read_text().splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and "/" in cells[0]:
            documented[cells[0]] = (cells[2], cells[3])
    assert documented == actual, "update docs/assets.md: " + ", ".join(
        f"{k} -> {v}" for k, v in sorted(actual.items()) if documented.get(k) != v)
