"""Rate limits per app: two apps on one Redis (two gunicorn processes) share one count.

Needs the Redis server on 127.0.0.1:6379 (.ci/run starts it); the test fails, never skips,
when it is not there. It writes only keys under a random prefix in database 15, and deletes them.
"""

from __future__ import annotations

import os
import uuid

import pytest
import redis

from tests.auth_helpers import make_app
from verifier.web.limits import limiter

REDIS_URL = os.environ.get("VERIFIER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
START_REDIS = (
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" '
    "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log"
)


@pytest.fixture
def redis_keys():
    """A unique key prefix for the limiter, and a function listing the Redis keys under it."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
        problem = None
    except redis.RedisError as exc:
        problem = str(exc)
    if problem is not None:  # outside the except block, so the message stands alone
        client.close()
        pytest.fail(
            f"Redis is not reachable at {REDIS_URL} ({problem}). Start it with\n  {START_REDIS}\n"
            "(.ci/run does so), or set VERIFIER_TEST_REDIS_URL to a Redis you can use.",
            pytrace=False,
        )
    prefix = f"verifier-test-{uuid.uuid4().hex}"

    def keys() -> list[str]:
        return sorted(k.decode() for k in client.scan_iter(match=f"*{prefix}*"))

    yield prefix, keys
    if found := keys():
        client.delete(*found)
    client.close()


def _failed_login(client) -> int:
    data = {"email": "nobody@example.test", "password": "not the password"}
    return client.post("/staff/login", data=data).status_code


def test_two_apps_on_redis_share_the_sign_in_throttle(
    app, tmp_path, database_url, monkeypatch, redis_keys
):
    prefix, keys = redis_keys
    limits = {"LOGIN_RATE_LIMIT": "4/minute", "RATELIMIT_KEY_PREFIX": prefix}
    # One process configured through the environment, the other through the app config.
    monkeypatch.setenv("VERIFIER_RATELIMIT_STORAGE_URL", REDIS_URL)
    first = make_app(tmp_path, database_url, **limits)
    monkeypatch.delenv("VERIFIER_RATELIMIT_STORAGE_URL")
    second = make_app(tmp_path, database_url, RATELIMIT_STORAGE_URI=REDIS_URL, **limits)
    # Set up last, on memory:// and the same prefix: it must neither take over the other two
    # apps' storage nor share their count.
    alone = make_app(tmp_path, database_url, **limits)
    assert first.config["RATELIMIT_STORAGE_URI"] == REDIS_URL
    assert alone.config["RATELIMIT_STORAGE_URI"] == "memory://"

    clients = [first.test_client(), second.test_client()]
    statuses = [_failed_login(clients[i % 2]) for i in range(5)]
    assert statuses == [422, 422, 422, 422, 429]  # the fifth attempt overall, not per app
    assert [_failed_login(c) for c in clients] == [429, 429]
    (key,) = keys()  # one counter, in Redis, for both apps
    assert "127.0.0.1" in key and "staff.login" in key

    assert _failed_login(alone.test_client()) == 422


def test_each_app_keeps_its_own_storage_and_key_prefix(app, tmp_path, database_url):
    first = make_app(tmp_path, database_url, LOGIN_RATE_LIMIT="2/minute")
    second = make_app(
        tmp_path, database_url, LOGIN_RATE_LIMIT="2/minute", RATELIMIT_KEY_PREFIX="second"
    )
    with first.app_context():
        first_storage, first_prefix = limiter.storage, limiter._key_prefix
    with second.app_context():
        assert limiter.storage is not first_storage
        assert (first_prefix, limiter._key_prefix) == ("", "second")

    one, two = first.test_client(), second.test_client()
    assert [_failed_login(one) for _ in range(3)] == [422, 422, 429]
    assert _failed_login(two) == 422  # memory:// counts per process
