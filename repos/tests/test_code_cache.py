"""The process-local cache in front of Django's cache: bounded by bytes, least recently used out first."""

from django.core.cache import cache

from repos.code import _MISSING, LocalCache, cache_key, cached, local_cache


def test_it_evicts_the_least_recently_used_entries_beyond_its_size():
    local = LocalCache(max_bytes=100)
    local.put("a", "x" * 10, 10)
    local.put("b", "y" * 10, 10)
    assert local.get("a") == "x" * 10  # a is now the most recently used
    for n in range(9):
        local.put(f"filler{n}", "z" * 10, 10)
    assert local.get("b") is _MISSING
    assert local.get("a") == "x" * 10
    assert local.used <= 100


def test_it_never_keeps_a_value_bigger_than_an_eighth_of_its_size():
    local = LocalCache(max_bytes=80)
    local.put("big", "x" * 11, 11)
    assert local.get("big") is _MISSING
    assert local.used == 0


def test_a_value_not_shared_is_computed_once_and_kept_in_this_process_only(db):
    computed = []
    parts = ("unshared", "a-sha-no-other-test-uses")
    for _ in range(2):
        assert cached(parts, lambda: computed.append(1) or "listing", shared=False) == "listing"
    assert computed == [1]
    assert cache.get(cache_key("code", parts)) is None
    assert local_cache.get(cache_key("code", parts)) == "listing"
