"""Settings: development defaults generate secrets safely; production refuses to guess."""

import base64
import stat

import pytest

from verifier.config import load_config
from verifier.errors import ConfigError


def test_development_generates_secrets_once_with_mode_0600(tmp_path):
    env = {"VERIFIER_INSTANCE_DIR": str(tmp_path)}
    first = load_config(env)
    second = load_config(env)
    assert first["SECRET_KEY"] == second["SECRET_KEY"]
    assert first["MASTER_KEYS"] == second["MASTER_KEYS"]
    for name in ("secret_key", "master.key"):
        mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))
    assert first["DATABASE_URL"] == f"sqlite:///{tmp_path / 'verifier.db'}"


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ("VERIFIER_SECRET_KEY", "VERIFIER_SECRET_KEY"),
        ("VERIFIER_MASTER_KEY", "VERIFIER_MASTER_KEY"),
        ("VERIFIER_DATABASE_URL", "VERIFIER_DATABASE_URL"),
    ],
)
def test_production_names_the_missing_setting(tmp_path, missing, named):
    env = {
        "VERIFIER_ENV": "production",
        "VERIFIER_INSTANCE_DIR": str(tmp_path),
        "VERIFIER_SECRET_KEY": "s" * 40,
        "VERIFIER_MASTER_KEY": base64.b64encode(b"k" * 32).decode(),
        "VERIFIER_DATABASE_URL": "postgresql+psycopg://db/verifier",
    }
    del env[missing]
    with pytest.raises(ConfigError) as err:
        load_config(env)
    assert named in str(err.value)
    assert not (tmp_path / "secret_key").exists()


def test_production_refuses_debug(tmp_path):
    env = {
        "VERIFIER_ENV": "production",
        "VERIFIER_SECRET_KEY": "s" * 40,
        "VERIFIER_MASTER_KEY": base64.b64encode(b"k" * 32).decode(),
        "VERIFIER_DATABASE_URL": "postgresql+psycopg://db/verifier",
        "VERIFIER_DEBUG": "1",
    }
    with pytest.raises(ConfigError, match="debug"):
        load_config(env)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("VERIFIER_MASTER_KEY", "not base64!", "not valid base64"),
        ("VERIFIER_MASTER_KEY", base64.b64encode(b"short").decode(), "32 bytes"),
        ("VERIFIER_SECRET_KEY", "tooshort", "at least 32"),
        ("VERIFIER_API_MAX_BODY_BYTES", "lots", "whole number"),
    ],
)
def test_bad_values_are_named(tmp_path, name, value, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config({"VERIFIER_INSTANCE_DIR": str(tmp_path), name: value})
    assert name in str(err.value)


def test_old_master_keys_are_kept_for_reading(tmp_path):
    old = base64.b64encode(b"o" * 32).decode()
    cfg = load_config({"VERIFIER_INSTANCE_DIR": str(tmp_path), "VERIFIER_OLD_MASTER_KEYS": old})
    assert len(cfg["MASTER_KEYS"]) == 2
    assert cfg["MASTER_KEY_ID"] in cfg["MASTER_KEYS"]


def test_app_sets_security_headers(client):
    resp = client.get("/")
    assert resp.status_code == 200
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "same-origin"
    assert resp.headers["Cache-Control"] == "no-store"


def test_html_404_page(client):
    resp = client.get("/no/such/page")
    assert resp.status_code == 404
    assert b"There is nothing at this address." in resp.data
