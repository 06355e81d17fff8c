"""Request throttling: one Flask-Limiter shared by every blueprint (sign-in, portal, ...)."""

from __future__ import annotations

import os

from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

# Counters live in memory by default: right for one process. Several gunicorn workers or hosts
# must share them through Redis (VERIFIER_RATELIMIT_STORAGE_URL=redis://host:6379/0), or each
# process would allow the full limit on its own.
DEFAULT_STORAGE_URL = "memory://"
DEFAULT_LOGIN_LIMIT = "10/minute"

# No default limits: each view that needs throttling says so with `@limiter.limit(...)`.
limiter = Limiter(key_func=get_remote_address, default_limits=[])


def init_limits(app: Flask) -> None:
    """Configure the storage (VERIFIER_RATELIMIT_STORAGE_URL) and attach the limiter to `app`."""
    app.config.setdefault(
        "RATELIMIT_STORAGE_URI",
        os.environ.get("VERIFIER_RATELIMIT_STORAGE_URL", "").strip() or DEFAULT_STORAGE_URL,
    )
    app.config.setdefault(
        "LOGIN_RATE_LIMIT",
        os.environ.get("VERIFIER_LOGIN_RATE_LIMIT", "").strip() or DEFAULT_LOGIN_LIMIT,
    )
    # The limiter object is shared by every app in the process (tests build many); Flask-Limiter
    # keeps the last app's `enabled` as the next one's default, so state it for each app.
    app.config.setdefault("RATELIMIT_ENABLED", True)
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    limiter.init_app(app)
