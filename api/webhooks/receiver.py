"""The receiving side: one durable spool per source, started and stopped with the app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from api.webhooks.config import WebhookSettings
from api.webhooks.ledger import DUPLICATE, DeliveryLedger, LedgerSpool, recover
from leadscore_core.settings import Settings

log = logging.getLogger("leadscore.webhooks")

STRIPE = "stripe"


class SpoolUnavailable(RuntimeError):
    """The delivery could not be stored (queue full, disk error): answer 503, the sender
    retries."""


def form_source(profile: str) -> str:
    return f"form:{profile}"


class WebhookReceiver:
    """Stores deliveries: ``await deliver(source, key, line)`` returns ``stored`` or
    ``duplicate`` once the line (or the earlier one with that key) is durable.

    Layout under the data root: ``spool/deliveries.sqlite`` (the ledger), ``spool/stripe/``
    and ``spool/forms/<profile>/`` (open files), sealed into ``inbox/payments/`` and
    ``inbox/leads/``.
    """

    def __init__(self, settings: Settings, hooks: WebhookSettings) -> None:
        self.settings = settings
        self.hooks = hooks
        self.root = settings.root / "spool"
        self.ledger: DeliveryLedger | None = None
        self._spools: dict[str, LedgerSpool] = {}
        self._inflight: dict[tuple[str, str], asyncio.Future] = {}

    def places(self, source: str) -> tuple[Path, Path, str]:
        """(open-file folder, inbox it seals into, file name prefix) of a source."""
        if source == STRIPE:
            return self.root / "stripe", self.settings.inbox("payments"), "stripe_events"
        profile = source.removeprefix("form:")
        return (self.root / "forms" / profile, self.settings.inbox("leads"),
                f"form_{profile}")

    def start(self) -> None:
        """Open the ledger and recover what a crashed process left (before any delivery)."""
        self.ledger = DeliveryLedger(self.root / "deliveries.sqlite")
        sources = [STRIPE] + [form_source(p) for p in self.hooks.form_webhooks]
        for source in sources:
            directory, inbox, _ = self.places(source)
            for path in recover(self.ledger, source, directory, inbox):
                log.warning("sealed %s, left open by a process that stopped", path.name)

    def spool(self, source: str) -> LedgerSpool:
        spool = self._spools.get(source)
        if spool is None:
            if self.ledger is None:
                raise SpoolUnavailable("the webhook receiver is not started")
            directory, inbox, prefix = self.places(source)
            spool = LedgerSpool(source, self.ledger, directory, inbox, prefix=prefix,
                                max_records=self.hooks.webhook_seal_records,
                                max_age_seconds=self.hooks.webhook_seal_seconds)
            self._spools[source] = spool
        return spool

    async def deliver(self, source: str, key: str, line: bytes) -> str:
        inflight = self._inflight.get((source, key))
        if inflight is not None:  # the same delivery again while the first is being written
            await asyncio.shield(inflight)
            return DUPLICATE
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()

        def done(result: str | None, error: BaseException | None) -> None:
            loop.call_soon_threadsafe(_settle, future, result, error)

        if not self.spool(source).submit((key, line), done):
            raise SpoolUnavailable("the webhook spool is full or closed; retry")
        self._inflight[(source, key)] = future
        try:
            # shielded: a sender hanging up does not cancel what is being written
            return await asyncio.shield(future)
        finally:
            self._inflight.pop((source, key), None)

    def stop(self) -> None:
        for spool in self._spools.values():
            with contextlib.suppress(Exception):
                spool.close()
        self._spools.clear()
        if self.ledger is not None:
            self.ledger.close()


def _settle(future: asyncio.Future, result: str | None, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(SpoolUnavailable(f"delivery not stored: {error}"))
    else:
        future.set_result(result)
