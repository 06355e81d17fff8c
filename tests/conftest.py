"""Shared fixtures: an app on a migrated database (SQLite, or PostgreSQL when
VERIFIER_TEST_DATABASE_URL is set), emptied after every test."""

from __future__ import annotations

import base64
import os
import secrets
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from verifier import create_app
from verifier.db import make_engine, migrate, new_session
from verifier.intake.apikeys import create_api_key
from verifier.models import Base

PG_URL = os.environ.get("VERIFIER_TEST_DATABASE_URL", "").strip()


def pytest_report_header(config):
    return f"database: {'PostgreSQL ' + PG_URL if PG_URL else 'SQLite (temporary file)'}"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    """A migrated, empty database for this test run; PostgreSQL gets a private schema."""
    if not PG_URL:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        migrate(url)
        yield url
        return
    schema = f"test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    url = url.render_as_string(hide_password=False)
    migrate(url)
    yield url
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _empty_tables(app) -> None:
    session = new_session(app)
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    if session.bind.dialect.name == "postgresql":
        session.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    else:
        for name in tables:
            session.execute(text(f"DELETE FROM {name}"))
    session.commit()
    session.close()


def make_environ(tmp_path: Path, database_url: str, **extra: str) -> dict[str, str]:
    return {
        "VERIFIER_DATABASE_URL": database_url,
        "VERIFIER_INSTANCE_DIR": str(tmp_path / "instance"),
        "VERIFIER_UPLOADS_DIR": str(tmp_path / "uploads"),
        "VERIFIER_SECRET_KEY": secrets.token_urlsafe(48),
        "VERIFIER_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "VERIFIER_SHOP_NAME": "Test Shop",
        **extra,
    }


@pytest.fixture
def app(tmp_path, database_url):
    (tmp_path / "uploads").mkdir()
    app = create_app(
        {
            "ENVIRON": make_environ(tmp_path, database_url),
            "TESTING": True,
            "WTF_CSRF_ENABLED": False,
        }
    )
    yield app
    _empty_tables(app)
    app.extensions["verifier.engine"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def db_session(app, database_url):
    """A session for arranging and checking data outside requests.

    On SQLite its transactions are deferred, so a read here never holds the write lock that a
    request needs; commit after arranging data, and before reading what a request changed.
    """
    engine = make_engine(database_url, immediate=False)
    session = Session(engine, expire_on_commit=False)
    yield session
    session.rollback()
    session.close()
    engine.dispose()


@pytest.fixture
def api_key(app):
    session = new_session(app)
    _row, key = create_api_key(session, "test shop", datetime.now(UTC))
    session.commit()
    session.close()
    return key


@pytest.fixture
def auth(api_key):
    return {"Authorization": f"Bearer {api_key}"}


# Staff users and sign-in (verifier.web.auth). Passwords are known so tests sign in for real.
STAFF_PASSWORDS = {
    "reviewer@example.test": "reviewer-password-1",
    "reviewer2@example.test": "reviewer-password-2",
    "admin@example.test": "admin-password-123",
}


def _make_staff(app, email: str, role: str):
    from verifier.staff.users import create_user

    session = new_session(app)
    user = create_user(session, email, role, STAFF_PASSWORDS[email], now=datetime.now(UTC))
    session.commit()
    session.close()
    return user


@pytest.fixture
def reviewer(app):
    """A signed-up reviewer (password already chosen, no two-factor)."""
    return _make_staff(app, "reviewer@example.test", "reviewer")


@pytest.fixture
def second_reviewer(app):
    return _make_staff(app, "reviewer2@example.test", "reviewer")


@pytest.fixture
def admin_user(app):
    """A signed-up admin; admin two-factor is off in the test app (development default)."""
    return _make_staff(app, "admin@example.test", "admin")


@pytest.fixture
def login():
    """`login(client, user, password=None, code=None)` signs in through POST /staff/login
    (and /staff/login/code when `code` is given) and asserts that it worked."""

    def _login(client, user, password=None, code=None):
        password = password if password is not None else STAFF_PASSWORDS[user.email]
        response = client.post("/staff/login", data={"email": user.email, "password": password})
        if code is not None:
            assert response.status_code == 302, response.get_data(as_text=True)
            assert response.headers["Location"].endswith("/staff/login/code")
            response = client.post("/staff/login/code", data={"code": code})
        assert response.status_code == 302, response.get_data(as_text=True)
        assert "/staff/login" not in response.headers["Location"]
        with client.session_transaction() as flask_session:
            assert flask_session.get("_user_id") == str(user.id)
        return response

    return _login


@pytest.fixture(autouse=True)
def fast_password_hashing(monkeypatch):
    """Argon2id with tiny cost parameters: production's (64 MiB, 3 passes) take a third of a
    second per hash, and sign-in tests hash a lot. Hashes carry their parameters, so this
    changes speed only."""
    from argon2 import PasswordHasher

    monkeypatch.setattr(
        "verifier.staff.users._hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )
