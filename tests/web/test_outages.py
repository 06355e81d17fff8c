"""When the database is unreachable: calm 503s with Retry-After, liveness still up, readiness
down; and recovery without a restart once it is back."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from tests.conftest import make_environ
from verifier import create_app
from verifier.db import migrate, new_session
from verifier.intake.apikeys import create_api_key

ORDER = {"external_id": "X-1"}


def _app(tmp_path, url):
    (tmp_path / "uploads").mkdir(exist_ok=True)
    return create_app({"ENVIRON": make_environ(tmp_path, url), "TESTING": True,
                       "WTF_CSRF_ENABLED": False})  # fmt: skip


def _assert_unavailable(client, caplog):
    api = client.post("/api/v1/orders", json=ORDER, headers={"Authorization": "Bearer vk_x"})
    assert api.status_code == 503
    assert api.headers["Retry-After"] == "30"
    assert api.get_json()["error"]["code"] == "service_unavailable"
    page = client.get("/u/some-token")
    html = page.get_data(as_text=True)
    assert page.status_code == 503 and int(page.headers["Retry-After"]) >= 30  # (the limiter's own)
    assert "briefly unavailable" in html and "Traceback" not in html and "sqlite" not in html
    assert client.get("/healthz").status_code == 200  # alive: no restart wanted
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["database"].startswith("unreachable")
    assert any("database unavailable" in r.getMessage() for r in caplog.records)


def test_an_unreachable_postgresql_server_gets_503_not_500(tmp_path, caplog):
    caplog.set_level(logging.ERROR)
    # Port 1 refuses connections: a PostgreSQL server that is down.
    app = _app(tmp_path, "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2")
    _assert_unavailable(app.test_client(), caplog)
    app.extensions["verifier.engine"].dispose()


def test_a_sqlite_file_made_unreachable_gets_503_and_recovers_without_a_restart(tmp_path, caplog):
    caplog.set_level(logging.ERROR)
    folder = tmp_path / "db"
    folder.mkdir()
    url = f"sqlite:///{folder / 'verifier.db'}"
    migrate(url)
    app = _app(tmp_path, url)
    with app.app_context():
        session = new_session(app)
        _row, key = create_api_key(session, "shop", datetime.now(UTC))
        session.commit()
        session.close()
    client = app.test_client()
    assert client.get("/readyz").status_code == 200

    folder.rename(tmp_path / "moved")  # the volume went away
    app.extensions["verifier.engine"].dispose()  # and with it every open connection
    _assert_unavailable(client, caplog)

    (tmp_path / "moved").rename(folder)  # back again: the same process serves at once
    assert client.get("/readyz").get_json() == {"status": "ready", "database": "ok",
                                                "uploads": "ok", "card_masking": "ok"}  # fmt: skip
    answer = client.get("/api/v1/orders/none", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 404  # the key was read from the database again
    app.extensions["verifier.engine"].dispose()
