"""Mail and webhook settings: safe development defaults, production names what is missing."""

from __future__ import annotations

import base64
import stat

import pytest

from verifier.config import load_config
from verifier.errors import ConfigError
from verifier.notify.mail import FileBackend, SmtpBackend, backend_from_config


def production(tmp_path, **extra) -> dict:
    return {
        "VERIFIER_ENV": "production",
        "VERIFIER_INSTANCE_DIR": str(tmp_path),
        "VERIFIER_SECRET_KEY": "s" * 40,
        "VERIFIER_MASTER_KEY": base64.b64encode(b"k" * 32).decode(),
        "VERIFIER_DATABASE_URL": "postgresql+psycopg://db/verifier",
        **extra,
    }


def test_development_defaults(tmp_path):
    cfg = load_config({"VERIFIER_INSTANCE_DIR": str(tmp_path)})
    assert cfg["MAIL_BACKEND"] == "file"
    assert cfg["MAIL_OUTBOX_DIR"] == tmp_path / "outbox"
    assert cfg["MAIL_FROM"] == "Verifier <no-reply@localhost>"
    assert (cfg["SMTP_PORT"], cfg["SMTP_STARTTLS"], cfg["SMTP_SSL"]) == (587, True, False)
    assert cfg["SMTP_TIMEOUT"] == 30
    assert cfg["WEBHOOK_URL"] == "" and cfg["WEBHOOK_TIMEOUT"] == 10
    assert isinstance(backend_from_config(cfg), FileBackend)


def test_development_webhook_secret_is_generated_once_with_mode_0600(tmp_path):
    env = {"VERIFIER_INSTANCE_DIR": str(tmp_path)}
    first, second = load_config(env), load_config(env)
    assert first["WEBHOOK_SECRET"] == second["WEBHOOK_SECRET"]
    assert len(first["WEBHOOK_SECRET"]) >= 32
    assert stat.S_IMODE((tmp_path / "webhook_secret").stat().st_mode) == 0o600
    explicit = load_config({**env, "VERIFIER_WEBHOOK_SECRET": "w" * 32})
    assert explicit["WEBHOOK_SECRET"] == "w" * 32


def test_smtp_settings_build_an_smtp_backend(tmp_path):
    cfg = load_config({
        "VERIFIER_INSTANCE_DIR": str(tmp_path), "VERIFIER_MAIL_BACKEND": "SMTP",
        "VERIFIER_SMTP_HOST": "mail.example", "VERIFIER_SMTP_PORT": "465",
        "VERIFIER_SMTP_USERNAME": "mailer", "VERIFIER_SMTP_PASSWORD": "pw",
        "VERIFIER_SMTP_STARTTLS": "0", "VERIFIER_SMTP_SSL": "1", "VERIFIER_SMTP_TIMEOUT": "5",
        "VERIFIER_MAIL_FROM": "Shop <orders@shop.example>",
    })  # fmt: skip
    backend = backend_from_config(cfg)
    assert isinstance(backend, SmtpBackend)
    assert (backend.host, backend.port, backend.username, backend.password) == (
        "mail.example", 465, "mailer", "pw",
    )  # fmt: skip
    assert (backend.use_ssl, backend.starttls, backend.timeout) == (True, False, 5)
    assert cfg["MAIL_FROM"] == "Shop <orders@shop.example>"


def test_production_without_webhook_url_needs_no_webhook_secret(tmp_path):
    cfg = load_config(production(tmp_path))
    assert cfg["WEBHOOK_URL"] == "" and cfg["WEBHOOK_SECRET"] == ""
    assert not (tmp_path / "webhook_secret").exists()


def test_production_with_webhook_url_names_the_missing_secret(tmp_path):
    env = production(tmp_path, VERIFIER_WEBHOOK_URL="https://shop.example/hooks")
    with pytest.raises(ConfigError, match="VERIFIER_WEBHOOK_SECRET"):
        load_config(env)
    assert not (tmp_path / "webhook_secret").exists()
    cfg = load_config({**env, "VERIFIER_WEBHOOK_SECRET": "w" * 40})
    assert cfg["WEBHOOK_URL"] == "https://shop.example/hooks"


def test_production_smtp_needs_a_host(tmp_path):
    with pytest.raises(ConfigError, match="VERIFIER_SMTP_HOST"):
        load_config(production(tmp_path, VERIFIER_MAIL_BACKEND="smtp"))


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("VERIFIER_MAIL_BACKEND", "pigeon", "one of file, smtp"),
        ("VERIFIER_SMTP_PORT", "smtp", "whole number"),
        ("VERIFIER_SMTP_TIMEOUT", "0", "positive"),
        ("VERIFIER_MAIL_FROM", "nobody", "email address"),
        ("VERIFIER_WEBHOOK_URL", "ftp://shop.example/x", "http"),
        ("VERIFIER_WEBHOOK_URL", "https://", "http"),
        ("VERIFIER_WEBHOOK_SECRET", "short", "at least 32"),
        ("VERIFIER_WEBHOOK_TIMEOUT", "ten", "whole number"),
    ],
)
def test_bad_values_are_named(tmp_path, name, value, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config({"VERIFIER_INSTANCE_DIR": str(tmp_path), name: value})
    assert name in str(err.value)
