"""Known customers: each churn model's published features of a customer, scored as the API
scores posted ones.

A customer may be known to either churn model or to both: the activity model reads the
serving snapshot (``features.customer_activity_latest``, the invoices' customers), the
snapshot model the account snapshots' features (``serving/customer_accounts.parquet``, which
``scores/customers`` publishes with each category as the file spelled it: Telco-style
accounts). Both files are published by Dagster and read-only here, never the warehouse.
``GET /v1/customers/{id}/churn`` and the customer pages look customers up through this one
class, so they find the same customers and state each model's own horizon; a customer both
models know is answered by the one that sees them most at risk, as the export and the pages
rank them (``leadscore_core.tiers.riskiest``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from api.models import ServedModels
from api.schemas import ChurnRisk
from api.scoring import LogRows, churn_risks
from api.snapshot import ServingSnapshot, SnapshotUnavailable
from leadscore_core.money import record_amounts
from leadscore_core.reasons import FieldDisplay, ReasonTexts, customer_texts
from leadscore_core.registry import MODELS
from leadscore_core.tiers import CHURN_MODELS, riskiest


@dataclass(frozen=True)
class Found:
    """A customer's row in one churn model's snapshot."""

    key: str  # the churn model (``MODELS`` key)
    features: dict[str, Any]
    as_of: str | None


@dataclass(frozen=True)
class KnownChurn:
    """One churn model's answer for a known customer, with the features it read."""

    key: str
    answer: ChurnRisk
    features: dict[str, Any]
    log_rows: LogRows


class FirstPublished:
    """The first of several snapshots whose file has been published, looked up as one: the
    account snapshots' features as their files spelled them, else (before ``scores/customers``
    has published them) as the features stage published them."""

    def __init__(self, *snapshots: ServingSnapshot):
        self.snapshots = snapshots

    def lookup(self, customer_id: str) -> tuple[dict[str, Any], str | None] | None:
        chosen = next((s for s in self.snapshots if s.path.is_file()), self.snapshots[-1])
        return chosen.lookup(customer_id)


class KnownCustomers:
    def __init__(self, snapshots: Mapping[str, ServingSnapshot | FirstPublished],
                 models: ServedModels,
                 risk: Callable[[float], str], horizons: Mapping[str, str],
                 displays: Mapping[str, Mapping[str, FieldDisplay] | ReasonTexts | None]):
        self.snapshots = dict(snapshots)  # churn model key -> the snapshot it reads
        self.models = models
        self.risk = risk
        self.horizons = horizons  # churn model key -> its horizon (leadscore_core.horizons)
        # churn model key -> the reasons' texts, remembered across lookups (as the posting
        # routes do; the same object as theirs when given one)
        self.texts = {key: d if isinstance(d, ReasonTexts) else ReasonTexts(d)
                      for key, d in displays.items()}

    @property
    def displays(self) -> dict[str, Mapping[str, FieldDisplay] | None]:
        """Churn model key -> its fields' labels and units."""
        return {key: texts.displays for key, texts in self.texts.items()}

    def find(self, customer_id: str, keys: tuple[str, ...] = CHURN_MODELS) -> list[Found]:
        """The customer's rows, in the order of ``keys`` (the activity model first). Raises
        ``SnapshotUnavailable`` only when none of the snapshots can be read: a business
        without account snapshots (or without invoices) has one of them only."""
        found, unreadable = [], []
        for key in keys:
            try:
                row = self.snapshots[key].lookup(customer_id)
            except SnapshotUnavailable as exc:
                unreadable.append(exc)
                continue
            if row is not None:
                found.append(Found(key, dict(row[0]), row[1]))
        if unreadable and len(unreadable) == len(keys):
            raise unreadable[0]
        return found

    def score(self, found: Found, customer_id: str) -> KnownChurn | None:
        """The served champion's answer for the row (None while that model is not loaded)."""
        served = self.models.get(MODELS[found.key])
        if served is None:
            return None
        # the customer's amounts of money read in the currencies of their own payments
        texts = customer_texts(self.texts[found.key], found.features)
        out, log_rows = churn_risks(served, None, self.risk, records=[found.features],
                                    ids=[customer_id], as_of=found.as_of, displays=texts,
                                    horizon=self.horizons[found.key])
        out[0].amounts = record_amounts(found.features)
        return KnownChurn(found.key, out[0], found.features, log_rows)

    def riskiest(self, found: list[Found], customer_id: str) -> KnownChurn | None:
        """The answer the customer's risk comes from: of every model that knows them, the one
        that sees them most likely to leave (``tiers.riskiest``, the rule of the customer
        export and pages; the first in ``found`` wins a tie). None while one is not loaded."""
        scored = [self.score(f, customer_id) for f in found]
        if not scored or any(s is None for s in scored):
            return None
        _, [top] = riskiest(np.array([[s.answer.probability for s in scored]]))
        return scored[int(top)]

    def answers(self, customer_id: str, keys: tuple[str, ...] = CHURN_MODELS
                ) -> dict[str, KnownChurn]:
        """Each loaded churn model's answer for a customer its snapshot has (by model key);
        empty for a customer no readable snapshot has."""
        try:
            found = self.find(customer_id, keys)
        except SnapshotUnavailable:
            return {}
        scored = (self.score(f, customer_id) for f in found)
        return {s.key: s for s in scored if s is not None}
