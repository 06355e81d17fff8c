"""Settings from VERIFIER_* environment variables, with safe defaults for the embedded set-up."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from collections.abc import Callable, Mapping
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import urlsplit

from verifier.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INSTANCE_DIR = PROJECT_ROOT / "instance"
DEFAULT_UPLOADS_DIR = PROJECT_ROOT / "uploads"

MB = 1024 * 1024

# name -> (default, description); the README's configuration table is written from this.
SETTINGS: dict[str, tuple[str, str]] = {
    "VERIFIER_ENV": ("development", "`production` refuses to start without explicit secrets"),
    "VERIFIER_DATABASE_URL": (
        "sqlite:///instance/verifier.db",
        "SQLAlchemy URL; `postgresql+psycopg://user@host/db` in production",
    ),
    "VERIFIER_SECRET_KEY": ("generated into instance/secret_key", "signs sessions and CSRF tokens"),
    "VERIFIER_MASTER_KEY": (
        "generated into instance/master.key",
        "base64 of 32 bytes; wraps every document's data key",
    ),
    "VERIFIER_OLD_MASTER_KEYS": ("", "comma-separated base64 keys still accepted for reading"),
    "VERIFIER_INSTANCE_DIR": ("instance/", "where the SQLite database and generated keys live"),
    "VERIFIER_UPLOADS_DIR": ("uploads/", "encrypted document blobs"),
    "VERIFIER_BASE_URL": ("http://127.0.0.1:5000", "public address used in emailed links"),
    "VERIFIER_SHOP_NAME": ("Demo Shop", "shop name shown to customers"),
    "VERIFIER_DEBUG": ("0", "Flask debug mode; refused in production"),
    "VERIFIER_API_MAX_BODY_BYTES": ("1048576", "largest accepted API request body"),
    "VERIFIER_UPLOAD_MAX_FILE_BYTES": ("15728640", "largest accepted document file"),
    "VERIFIER_LOG_LEVEL": ("INFO", "Python logging level"),
    "VERIFIER_MAIL_BACKEND": (
        "file",
        "`file` writes each email as an .eml file into instance/outbox/; `smtp` sends it",
    ),
    "VERIFIER_SMTP_HOST": ("localhost", "SMTP server (with VERIFIER_MAIL_BACKEND=smtp)"),
    "VERIFIER_SMTP_PORT": ("587", "SMTP port (465 with VERIFIER_SMTP_SSL=1)"),
    "VERIFIER_SMTP_USERNAME": ("", "SMTP login; empty sends without logging in"),
    "VERIFIER_SMTP_PASSWORD": ("", "SMTP password"),
    "VERIFIER_SMTP_STARTTLS": ("1", "upgrade the connection with STARTTLS before logging in"),
    "VERIFIER_SMTP_SSL": ("0", "implicit TLS from the first byte (SMTPS); STARTTLS is then unused"),
    "VERIFIER_SMTP_TIMEOUT": ("30", "seconds before a silent SMTP server counts as a failure"),
    "VERIFIER_MAIL_FROM": ("Verifier <no-reply@localhost>", "sender of customer emails"),
    "VERIFIER_WEBHOOK_URL": (
        "",
        "bootstrap webhook address, used while no endpoint is added on the webhooks page",
    ),
    "VERIFIER_WEBHOOK_SECRET": (
        "generated into instance/webhook_secret",
        "HMAC key the shop uses to check `Verifier-Signature`; required in production "
        "when VERIFIER_WEBHOOK_URL is set",
    ),
    "VERIFIER_WEBHOOK_TIMEOUT": ("10", "seconds to wait for the shop's webhook endpoint"),
    "VERIFIER_TRUSTED_PROXIES": (
        "0",
        "reverse proxies in front of the app whose X-Forwarded-For/-Proto/-Host are believed "
        "(0 to 5); 0 ignores those headers",
    ),
}

MAIL_BACKENDS = ("file", "smtp")
MAX_TRUSTED_PROXIES = 5


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _int_setting(env: Mapping[str, str], name: str) -> int:
    raw = env.get(name, SETTINGS[name][0])
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


def _trusted_proxies(env: Mapping[str, str]) -> int:
    name = "VERIFIER_TRUSTED_PROXIES"
    raw = env.get(name, "").strip() or SETTINGS[name][0]
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_TRUSTED_PROXIES:
        raise ConfigError(
            f"{name} must be a whole number from 0 to {MAX_TRUSTED_PROXIES}, got {raw!r}"
        )
    return value


def decode_master_key(raw: str, name: str) -> bytes:
    """Decode a base64 master key; ConfigError names the setting unless it is 32 bytes."""
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{name} is not valid base64") from None
    if len(key) != 32:
        raise ConfigError(f"{name} must decode to 32 bytes (256 bits), got {len(key)}")
    return key


def key_id_for(key: bytes) -> str:
    """A stable, non-secret identifier of a master key, stored beside each wrapped data key."""
    return hashlib.sha256(b"verifier-key-id:" + key).hexdigest()[:16]


def _mail_settings(env: Mapping[str, str], production: bool, instance_dir: Path) -> dict:
    """Customer email delivery: backend, SMTP connection and sender; raises ConfigError."""
    backend = env.get("VERIFIER_MAIL_BACKEND", "file").strip().lower() or "file"
    if backend not in MAIL_BACKENDS:
        raise ConfigError(
            f"VERIFIER_MAIL_BACKEND must be one of {', '.join(MAIL_BACKENDS)}, got {backend!r}"
        )
    host = env.get("VERIFIER_SMTP_HOST", "").strip()
    if production and backend == "smtp" and not host:
        raise ConfigError("VERIFIER_MAIL_BACKEND=smtp in production needs VERIFIER_SMTP_HOST")
    mail_from = env.get("VERIFIER_MAIL_FROM", "").strip() or SETTINGS["VERIFIER_MAIL_FROM"][0]
    if "@" not in parseaddr(mail_from)[1]:
        raise ConfigError(f"VERIFIER_MAIL_FROM must hold an email address, got {mail_from!r}")
    return {
        "MAIL_BACKEND": backend,
        "MAIL_OUTBOX_DIR": instance_dir / "outbox",
        "MAIL_FROM": mail_from,
        "SMTP_HOST": host or SETTINGS["VERIFIER_SMTP_HOST"][0],
        "SMTP_PORT": _int_setting(env, "VERIFIER_SMTP_PORT"),
        "SMTP_USERNAME": env.get("VERIFIER_SMTP_USERNAME", "").strip(),
        "SMTP_PASSWORD": env.get("VERIFIER_SMTP_PASSWORD", ""),
        "SMTP_STARTTLS": _truthy(env.get("VERIFIER_SMTP_STARTTLS", "1")),
        "SMTP_SSL": _truthy(env.get("VERIFIER_SMTP_SSL", "0")),
        "SMTP_TIMEOUT": _int_setting(env, "VERIFIER_SMTP_TIMEOUT"),
    }


def _webhook_settings(env: Mapping[str, str], production: bool, instance_dir: Path) -> dict:
    """Shop webhooks: target URL, signing secret, timeout; raises ConfigError."""
    url = env.get("VERIFIER_WEBHOOK_URL", "").strip()
    if url and (urlsplit(url).scheme not in {"http", "https"} or not urlsplit(url).hostname):
        raise ConfigError(f"VERIFIER_WEBHOOK_URL must be an http(s) address, got {url!r}")
    secret = env.get("VERIFIER_WEBHOOK_SECRET", "").strip()
    if production and url and not secret:
        raise ConfigError(
            "VERIFIER_WEBHOOK_URL is set, so production needs VERIFIER_WEBHOOK_SECRET"
        )
    if not secret and not production:
        secret = _read_or_create_secret(
            instance_dir / "webhook_secret", lambda: "whsec_" + secrets.token_urlsafe(32)
        )
    if secret and len(secret) < 32:
        raise ConfigError("VERIFIER_WEBHOOK_SECRET must be at least 32 characters")
    return {
        "WEBHOOK_URL": url,
        "WEBHOOK_SECRET": secret,
        "WEBHOOK_TIMEOUT": _int_setting(env, "VERIFIER_WEBHOOK_TIMEOUT"),
    }


def _read_or_create_secret(path: Path, make: Callable[[], str]) -> str:
    """Return the secret stored at `path`, creating it with mode 0600 on first use."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    # O_EXCL: two processes starting at once must not overwrite each other's key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


def _sqlite_url(instance_dir: Path) -> str:
    return f"sqlite:///{instance_dir / 'verifier.db'}"


def load_config(env: Mapping[str, str] | None = None) -> dict:
    """Build the app config from the environment; generates dev secrets, raises ConfigError."""
    env = os.environ if env is None else env
    production = env.get("VERIFIER_ENV", "development").strip().lower() == "production"
    debug = _truthy(env.get("VERIFIER_DEBUG")) or _truthy(env.get("FLASK_DEBUG"))
    instance_dir = Path(env.get("VERIFIER_INSTANCE_DIR") or DEFAULT_INSTANCE_DIR).resolve()
    uploads_dir = Path(env.get("VERIFIER_UPLOADS_DIR") or DEFAULT_UPLOADS_DIR).resolve()

    if production:
        missing = [
            name
            for name in ("VERIFIER_SECRET_KEY", "VERIFIER_MASTER_KEY", "VERIFIER_DATABASE_URL")
            if not env.get(name, "").strip()
        ]
        if missing:
            raise ConfigError(
                "VERIFIER_ENV=production needs explicit settings; missing: " + ", ".join(missing)
            )
        if debug:
            raise ConfigError(
                "VERIFIER_ENV=production refuses debug mode: unset VERIFIER_DEBUG and FLASK_DEBUG"
            )

    secret_key = env.get("VERIFIER_SECRET_KEY", "").strip() or _read_or_create_secret(
        instance_dir / "secret_key", lambda: secrets.token_urlsafe(48)
    )
    if len(secret_key) < 32:
        raise ConfigError("VERIFIER_SECRET_KEY must be at least 32 characters")
    master_raw = env.get("VERIFIER_MASTER_KEY", "").strip() or _read_or_create_secret(
        instance_dir / "master.key", lambda: base64.b64encode(secrets.token_bytes(32)).decode()
    )
    master_key = decode_master_key(master_raw, "VERIFIER_MASTER_KEY")
    master_keys = {key_id_for(master_key): master_key}
    for raw in filter(
        None, (s.strip() for s in env.get("VERIFIER_OLD_MASTER_KEYS", "").split(","))
    ):
        old = decode_master_key(raw, "VERIFIER_OLD_MASTER_KEYS")
        master_keys.setdefault(key_id_for(old), old)

    return {
        "ENV_NAME": "production" if production else "development",
        "DEBUG": debug,
        "SECRET_KEY": secret_key,
        "MASTER_KEY_ID": key_id_for(master_key),
        "MASTER_KEYS": master_keys,
        "DATABASE_URL": env.get("VERIFIER_DATABASE_URL", "").strip() or _sqlite_url(instance_dir),
        "INSTANCE_DIR": instance_dir,
        "UPLOADS_DIR": uploads_dir,
        "BASE_URL": env.get("VERIFIER_BASE_URL", SETTINGS["VERIFIER_BASE_URL"][0]).rstrip("/"),
        "SHOP_NAME": env.get("VERIFIER_SHOP_NAME", SETTINGS["VERIFIER_SHOP_NAME"][0]),
        "API_MAX_BODY_BYTES": _int_setting(env, "VERIFIER_API_MAX_BODY_BYTES"),
        "UPLOAD_MAX_FILE_BYTES": _int_setting(env, "VERIFIER_UPLOAD_MAX_FILE_BYTES"),
        "LOG_LEVEL": env.get("VERIFIER_LOG_LEVEL", "INFO").upper(),
        "TRUSTED_PROXIES": _trusted_proxies(env),
        "SESSION_COOKIE_SECURE": production,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        **_mail_settings(env, production, instance_dir),
        **_webhook_settings(env, production, instance_dir),
    }
