"""Behind a reverse proxy: VERIFIER_TRUSTED_PROXIES decides whether X-Forwarded-* are believed."""

from __future__ import annotations

import pytest
from flask import request, url_for

from tests.auth_helpers import events, make_app
from verifier.config import load_config
from verifier.errors import ConfigError


@pytest.mark.parametrize(
    ("value", "expected"), [(None, 0), ("", 0), ("0", 0), ("1", 1), (" 5 ", 5)]
)
def test_trusted_proxies_setting(tmp_path, value, expected):
    env = {"VERIFIER_INSTANCE_DIR": str(tmp_path)}
    if value is not None:
        env["VERIFIER_TRUSTED_PROXIES"] = value
    assert load_config(env)["TRUSTED_PROXIES"] == expected


@pytest.mark.parametrize("value", ["6", "-1", "two", "1.5"])
def test_a_bad_trusted_proxies_value_is_named(tmp_path, value):
    env = {"VERIFIER_INSTANCE_DIR": str(tmp_path), "VERIFIER_TRUSTED_PROXIES": value}
    with pytest.raises(ConfigError, match="VERIFIER_TRUSTED_PROXIES must be a whole number"):
        load_config(env)


def _app(tmp_path, database_url, proxies: int):
    app = make_app(
        tmp_path,
        database_url,
        environ={"VERIFIER_TRUSTED_PROXIES": str(proxies)},
        LOGIN_RATE_LIMIT="2/minute",
    )
    # What the app believes about the request it is serving.
    app.add_url_rule(
        "/test-only/seen",
        "seen",
        lambda: {"addr": request.remote_addr, "url": url_for("staff.login", _external=True)},
    )
    return app.test_client()


def _failed_login(client, forwarded_for: str) -> int:
    data = {"email": "nobody@example.test", "password": "not the password"}
    headers = {"X-Forwarded-For": forwarded_for}
    return client.post("/staff/login", data=data, headers=headers).status_code


def test_one_trusted_proxy_decides_address_scheme_and_host(app, tmp_path, database_url, db_session):
    client = _app(tmp_path, database_url, proxies=1)
    assert [_failed_login(client, "203.0.113.7") for _ in range(3)] == [422, 422, 429]
    assert _failed_login(client, "203.0.113.8") == 422  # another client, its own count
    assert [e.details["ip"] for e in events(db_session, "staff.login_failed")] == [
        "203.0.113.7",
        "203.0.113.7",
        "203.0.113.8",
    ]

    seen = client.get(
        "/test-only/seen",
        headers={
            # The client made up the first entry; only the proxy's own (last) one counts.
            "X-Forwarded-For": "198.51.100.1, 203.0.113.9",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "verify.shop.example",
        },
    ).get_json()
    assert seen == {"addr": "203.0.113.9", "url": "https://verify.shop.example/staff/login"}


def test_without_trusted_proxies_the_forwarded_headers_are_ignored(
    app, tmp_path, database_url, db_session
):
    client = _app(tmp_path, database_url, proxies=0)
    statuses = [_failed_login(client, f"203.0.113.{n}") for n in range(3)]
    assert statuses == [422, 422, 429]  # one count for the one real peer
    assert {e.details["ip"] for e in events(db_session, "staff.login_failed")} == {"127.0.0.1"}

    seen = client.get(
        "/test-only/seen",
        headers={
            "X-Forwarded-For": "203.0.113.9",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "verify.shop.example",
        },
    ).get_json()
    assert seen == {"addr": "127.0.0.1", "url": "http://localhost/staff/login"}
