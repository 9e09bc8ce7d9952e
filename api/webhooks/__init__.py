"""Push ingestion: Stripe and form-service webhooks, signed, stored exactly once, sealed into
the inboxes the sensors watch (see :mod:`api.webhooks.routes`)."""
