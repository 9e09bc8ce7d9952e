"""The prediction API (Litestar): lead scores, plan recommendations and churn risk.

Serves the MLflow registry's ``champion`` models and follows the alias as it moves. Never
imports Dagster and never opens the warehouse: models come from the registry, known
customers' features from the read-only serving snapshot. Start it with ``leadscore serve``.
"""
