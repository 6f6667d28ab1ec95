"""The cache on a Redis that cannot be reached: reads miss, writes are dropped, the outage is logged once, and
sign-in rate limits let people in rather than refusing everyone (fail open). A real Valkey comes back after."""

import logging

import pytest
from django.core.cache import caches
from django.urls import reverse

from portal import supervisor
from portal.cache import FailSafeRedisCache


@pytest.fixture
def gone(tmp_path):
    """Where a Valkey would answer: nothing does until the test starts one there."""
    return tmp_path / "valkey.sock"


def cache_at(socket_path) -> FailSafeRedisCache:
    return FailSafeRedisCache(f"unix://{socket_path}", {"OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2}})


def test_an_unreachable_redis_is_an_empty_cache_that_keeps_nothing_until_it_is_back(gone, tmp_path, caplog):
    cache = cache_at(gone)
    with caplog.at_level(logging.WARNING, logger="portal.cache"):
        assert cache.get("page") is None
        assert cache.get("page", "fallback") == "fallback"
        assert cache.get(key="page", default="fallback") == "fallback"
        cache.set("page", b"html", 60)
        assert cache.add("lock", True, 10) is True
        assert cache.get_many(["page", "lock"]) == {}
        assert cache.has_key("page") is False
        assert cache.delete("page") is False
        assert cache.set_many({"a": 1, "b": 2}) == ["a", "b"]
        cache.delete_many(["a", "b"])
    assert [record.getMessage() for record in caplog.records] == [
        f"cache: Redis is unreachable (Error 2 connecting to {gone}. No such file or directory.); "
        "pages are computed without it until it is back"
    ]

    caplog.clear()
    valkey = supervisor.start_valkey(gone, tmp_path / "valkey", persist=False, quiet=True)
    try:
        supervisor.wait_for_redis(f"unix://{gone}", process=valkey)
        with caplog.at_level(logging.WARNING, logger="portal.cache"):
            cache.set("page", b"html", 60)
            assert cache.get("page") == b"html"
            assert cache.add("lock", True, 10) is True
            assert cache.add("lock", True, 10) is False
    finally:
        supervisor.stop_process(valkey)
    assert [record.getMessage() for record in caplog.records] == ["cache: Redis is reachable again"]


def test_sign_in_works_while_the_cache_is_unreachable(client, alice, password, gone, settings):
    settings.CACHES = {"default": {"BACKEND": "portal.cache.FailSafeRedisCache", "LOCATION": f"unix://{gone}"}}
    assert isinstance(caches["default"], FailSafeRedisCache) and caches["default"].get("anything") is None
    # The rate limit keeps no count meanwhile: failed attempts are not limited (fail open) ...
    for _ in range(6):
        response = client.post(reverse("account_login"), {"login": "alice", "password": "wrong"})
        assert "Too many failed login attempts" not in response.content.decode()
    # ... and the right password still signs in, with the session in the database.
    response = client.post(reverse("account_login"), {"login": "alice", "password": password})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(alice.pk)
    assert client.get("/").status_code == 200


def test_a_message_published_while_redis_is_unreachable_is_dropped(gone):
    # As a write is: what listens for it asks the cache itself meanwhile.
    assert cache_at(gone).publish("portal:channel", ["a", "b"]) is None
