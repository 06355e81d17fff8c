"""Request throttling: one Flask-Limiter shared by every blueprint (sign-in, portal, ...)."""

from __future__ import annotations

import os
import weakref
from typing import Any

from flask import Flask, current_app, has_app_context
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

# Counters live in memory by default: right for one process. Several gunicorn workers or hosts
# must share them through Redis (VERIFIER_RATELIMIT_STORAGE_URL=redis://host:6379/0), or each
# process would allow the full limit on its own.
DEFAULT_STORAGE_URL = "memory://"
DEFAULT_LOGIN_LIMIT = "10/minute"


class _PerApp:
    """An attribute of the limiter that each app initialised with it holds for itself."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, limiter: Any, owner: type | None = None) -> Any:
        if limiter is None:
            return self
        state = limiter._state()
        if state is not None and self.name in state:
            return state[self.name]
        return limiter._defaults.get(self.name)

    def __set__(self, limiter: Any, value: Any) -> None:
        state = limiter._state()
        if state is None:  # the constructor's defaults
            limiter.__dict__.setdefault("_defaults", {})[self.name] = value
        else:
            state[self.name] = value


class PerAppLimiter(Limiter):
    """A Limiter whose storage, key prefix and switches belong to each app, not to the object.

    Flask-Limiter keeps them on the extension, so with one module-level limiter the last
    `init_app` would decide for every app in the process: its storage (memory or Redis), and
    the first app's key prefix for good. The route limits (`@limiter.limit`) stay shared.
    Outside an app context the most recently initialised app's values answer (tests call
    `limiter.reset()` between requests).
    """

    enabled = _PerApp()
    _storage = _PerApp()
    _limiter = _PerApp()
    _storage_dead = _PerApp()
    _fallback_limiter = _PerApp()
    _key_prefix = _PerApp()
    _headers_enabled = _PerApp()
    # Set in __init__ through __dict__; declared here for the type checker only.
    _apps: weakref.WeakKeyDictionary[Flask, dict[str, Any]]
    _last: dict[str, Any] | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__["_apps"] = weakref.WeakKeyDictionary()
        self.__dict__["_last"] = None
        super().__init__(*args, **kwargs)

    def init_app(self, app: Flask) -> None:
        state: dict[str, Any] = {}
        self._apps[app] = state
        # Inside the app's context every per-app attribute Flask-Limiter sets lands in `state`.
        with app.app_context():
            super().init_app(app)
        self.__dict__["_last"] = state

    def _state(self) -> dict[str, Any] | None:
        if has_app_context():
            # current_app is a werkzeug LocalProxy, which Flask's stubs type as Flask itself.
            return self._apps.get(current_app._get_current_object())  # type: ignore[attr-defined]
        return self._last


# No default limits: each view that needs throttling says so with `@limiter.limit(...)`.
limiter = PerAppLimiter(key_func=get_remote_address, default_limits=[])


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
    app.config.setdefault("RATELIMIT_ENABLED", True)
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    limiter.init_app(app)
