"""What the Dagster code location and the prediction API share, with neither framework in it.

Settings, source profiles and the one value vocabulary, the plan catalogue, the feature
encoder and model bundle, lead tiers and churn risk levels, the registered models and the
champion gate's rule, the prediction-log writer and the warehouse layout.
``leadscore_assets`` (Dagster) and ``api`` (Litestar) both import this package and never each
other; the import contract in ``pyproject.toml`` (import-linter, run by the test suite) keeps
it so. Nothing here imports Dagster or Litestar, and nothing imports MLflow at module load.
"""
