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
from verifier.apikeys import create_api_key
from verifier.db import make_engine, migrate, new_session
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
