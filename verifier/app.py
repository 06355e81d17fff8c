"""The app factory: `create_app()` wires every area's blueprint, the database and the web
basics together (imported lazily by `verifier`, see its docstring)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from verifier import db
from verifier.commands import register_commands
from verifier.config import PROJECT_ROOT, load_config
from verifier.core.policies import PolicyCache
from verifier.insight.views import bp as dashboard_bp
from verifier.intake.connector_views import bp as connectors_bp
from verifier.intake.group_commit import GroupCommit
from verifier.intake.integration_views import bp as integrations_bp
from verifier.intake.views import bp as api_bp
from verifier.notify.views import bp as webhooks_bp
from verifier.policy.rule_views import bp as rules_bp
from verifier.policy.views import bp as settings_bp
from verifier.portal.views import UPLOAD_OVERHEAD_BYTES
from verifier.portal.views import bp as portal_bp
from verifier.retention.views import bp as retention_bp
from verifier.review.filter_views import bp as review_filters_bp
from verifier.review.quality_views import bp as quality_bp
from verifier.review.views import bp as review_bp
from verifier.staff.admin_views import bp as admin_bp
from verifier.staff.views import bp as staff_bp
from verifier.web.auth import init_auth
from verifier.web.http import (
    InMemoryRequest,
    configure_error_handlers,
    configure_log_redaction,
    configure_security_headers,
    csrf,
)
from verifier.web.i18n import init_i18n
from verifier.web.limits import init_limits
from verifier.web.views import bp as home_bp


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: settings, database, blueprints, security headers, error pages, CLI."""
    app = Flask(
        "verifier",  # the app's logger stays "verifier", where the token redaction filter sits
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder="static",
        instance_relative_config=False,
    )
    app.request_class = InMemoryRequest
    configure_settings(app, test_config)
    configure_logging(app)
    configure_proxy(app)
    db.init_app(app)
    configure_caches(app)
    csrf.init_app(app)
    init_limits(app)
    init_auth(app)
    init_i18n(app)
    configure_blueprints(app)
    configure_security_headers(app)
    configure_error_handlers(app)
    register_commands(app)
    return app


def configure_settings(app: Flask, test_config: Mapping[str, Any] | None) -> None:
    env = dict(test_config.get("ENVIRON", {})) if test_config else None
    app.config.update(load_config(env))
    app.config.update(WTF_CSRF_TIME_LIMIT=None)
    # JSON answers keep the documented field order. app.json is typed as the base
    # JSONProvider; the DefaultJSONProvider Flask installs has sort_keys.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if test_config:
        app.config.update({k: v for k, v in test_config.items() if k != "ENVIRON"})
    # The CSRF check parses every POSTed form (files into memory: InMemoryRequest) before any
    # blueprint's own cap applies, so this ceiling bounds every request; API and portal narrow it.
    if app.config.get("MAX_CONTENT_LENGTH") is None:
        app.config["MAX_CONTENT_LENGTH"] = (
            app.config["UPLOAD_MAX_FILE_BYTES"] + UPLOAD_OVERHEAD_BYTES
        )
    app.debug = app.config["DEBUG"]


def configure_caches(app: Flask) -> None:
    # The policy in force, checked against the newest version on every use (core.policies).
    app.extensions["verifier.policy_cache"] = PolicyCache()
    # SQLite: cleared orders from this process's request threads, written in shared
    # transactions, so its one write lock is taken once per batch (verifier.intake.receiving).
    engine = db.get_engine(app)
    app.extensions["verifier.group_commit"] = (
        GroupCommit(engine) if engine.dialect.name == "sqlite" else None
    )


def configure_logging(app: Flask) -> None:
    logging.basicConfig(
        level=app.config["LOG_LEVEL"], format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    configure_log_redaction()


def configure_proxy(app: Flask) -> None:
    # Behind n trusted proxies the client's address, scheme and host are the n-th X-Forwarded-*
    # entries from the right; with none, those headers are ignored: anyone can send them.
    proxies = app.config["TRUSTED_PROXIES"]
    if proxies:
        # Flask's documented way to add WSGI middleware, though its types call wsgi_app a method.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies
        )


def configure_blueprints(app: Flask) -> None:
    app.register_blueprint(home_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(connectors_bp)
    app.register_blueprint(integrations_bp)
    app.register_blueprint(portal_bp)
    app.register_blueprint(staff_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(settings_bp)
    app.register_blueprint(rules_bp)
    app.register_blueprint(dashboard_bp)
    app.register_blueprint(quality_bp)
    app.register_blueprint(review_bp)
    app.register_blueprint(review_filters_bp)
    app.register_blueprint(retention_bp)
    app.register_blueprint(webhooks_bp)
    # The API authenticates with Bearer keys, not cookies, so it has no CSRF exposure.
    csrf.exempt(api_bp)
    # Platform webhooks are authenticated by their body's signature, never by cookies.
    csrf.exempt(connectors_bp)
