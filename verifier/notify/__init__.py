"""Notify: delivering the outbox (customer email, signed shop webhooks) and the webhooks pages."""
