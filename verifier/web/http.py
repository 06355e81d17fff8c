"""Cross-cutting web concerns: CSRF, security headers, and one error handler for JSON and HTML."""

from __future__ import annotations

import io
import logging
import re

import sqlalchemy.exc
from flask import Flask, Request, jsonify, make_response, render_template, request
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from verifier.errors import VerifierError

csrf = CSRFProtect()
log = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)


def configure_security_headers(app: Flask) -> None:
    @app.after_request
    def _headers(response):
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Permissions-Policy", "camera=(self), geolocation=()")
        if app.config["SESSION_COOKIE_SECURE"]:
            response.headers.setdefault(
                "Strict-Transport-Security", "max-age=31536000; includeSubDomains"
            )
        if request.blueprint != "static" and request.endpoint != "static":
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def wants_json() -> bool:
    """JSON for the API and for scripts that ask for it (the portal's upload requests)."""
    if request.path.startswith("/api/"):
        return True
    accept = request.accept_mimetypes
    return accept["application/json"] > accept["text/html"]


class InMemoryRequest(Request):
    """Parse uploaded files into memory, never into a temporary file on disk.

    Werkzeug spools uploads over 500 KB to a temporary file by default, which would put a
    customer's document on disk in plaintext; `max_content_length` bounds the memory used.
    """

    def _get_file_stream(
        self, total_content_length, content_type, filename=None, content_length=None
    ):
        return io.BytesIO()


TOKEN_PATH = re.compile(r"/u/[A-Za-z0-9_-]+")


class RedactLinkTokens(logging.Filter):
    """Keep upload-link tokens out of access logs: /u/<token> is logged as /u/[redacted]."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, dict):  # gunicorn's access log passes a mapping of atoms
            record.args = {k: self._redact(v) for k, v in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(self._redact(a) for a in record.args)
        record.msg = self._redact(record.msg)
        return True

    @staticmethod
    def _redact(value):
        return TOKEN_PATH.sub("/u/[redacted]", value) if isinstance(value, str) else value


def configure_log_redaction() -> None:
    # "verifier" is the app's own logger: Flask logs "Exception on <path>" there.
    for name in ("werkzeug", "gunicorn.access", "gunicorn.error", "verifier"):
        logging.getLogger(name).addFilter(RedactLinkTokens())


def json_error(status: int, code: str, message: str, fields: dict | None = None):
    body = {"error": {"code": code, "message": message, "fields": fields or {}}}
    return jsonify(body), status


RETRY_AFTER_S = 30


def configure_error_handlers(app: Flask) -> None:
    """One place that turns errors into JSON under /api/ and into an HTML page elsewhere."""

    @app.errorhandler(VerifierError)
    def _domain_error(exc: VerifierError):
        fields = getattr(exc, "fields", None)
        if wants_json():
            return json_error(exc.status, exc.code, exc.message, fields)
        return render_template("error.html", status=exc.status, message=exc.message), exc.status

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(sqlalchemy.exc.TimeoutError)
    def _database_unavailable(exc: Exception):
        # The database is down or out of connections: nothing the visitor did, and worth
        # trying again shortly. Logged for the operator by type only (messages can hold hosts).
        log.error("database unavailable: %s", type(getattr(exc, "orig", None) or exc).__name__)
        message = "The service is briefly unavailable. Please try again in a minute."
        if wants_json():
            response, status = json_error(503, "service_unavailable", message)
        else:
            response = make_response(render_template("web/unavailable.html", message=message))
            status = 503
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response, status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        messages: dict[int | None, str] = {
            400: "The request could not be understood.",
            401: "Authentication is required.",
            403: "You do not have access to this page.",
            404: "There is nothing at this address.",
            405: "This address does not accept that method.",
            413: "The request is too large.",
            429: "Too many requests. Please wait a moment and try again.",
        }
        message = messages.get(exc.code, exc.description or exc.name)
        if wants_json():
            code = (exc.name or "error").lower().replace(" ", "_")
            response, status = json_error(exc.code or 500, code, message)
            for header in ("Allow", "Retry-After", "WWW-Authenticate"):
                if exc.get_response().headers.get(header):
                    response.headers[header] = exc.get_response().headers[header]
            return response, status
        return render_template("error.html", status=exc.code, message=message), exc.code
