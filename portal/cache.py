"""The shared cache on Redis, for which an unreachable server is a miss, never an error.

Everything the portal keeps in the cache can be computed again (rendered code named by shas, the sign-up flag,
allauth's rate-limit counters), so while Redis is down reads answer their default, writes and deletes are
dropped, and pages are slower, not broken. Rate limits fail open meanwhile: with no counter kept, sign-ins are
not limited until Redis is back (each still costs a password hash). The outage is logged once, and once again when the server is back."""

import functools
import logging

import redis
from django.core.cache.backends.redis import RedisCache

log = logging.getLogger(__name__)

# What a call to an unreachable (or stuck) server raises; a missing key or a bad value still raises as it would.
UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


def _fall_back(default):
    """Decorate a cache method: while Redis is unreachable it answers default(args, kwargs) instead of raising."""

    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            try:
                result = method(self, *args, **kwargs)
            except UNREACHABLE as error:
                self._went_down(error)
                return default(args, kwargs)
            self._came_back()
            return result

        return wrapper

    return decorate


def _argument(position: int, name: str, fallback=None):
    """The default of a call: the named argument (get's default), else fallback."""
    return lambda args, kwargs: args[position] if len(args) > position else kwargs.get(name, fallback)


class FailSafeRedisCache(RedisCache):
    """Django's Redis cache; while the server cannot be reached it behaves like an empty cache that keeps nothing."""

    def __init__(self, server, params):
        super().__init__(server, params)
        self.unreachable = False

    def _went_down(self, error: Exception) -> None:
        if not self.unreachable:
            self.unreachable = True
            log.warning("cache: Redis is unreachable (%s); pages are computed without it until it is back", error)

    def _came_back(self) -> None:
        if self.unreachable:
            self.unreachable = False
            log.warning("cache: Redis is reachable again")

    get = _fall_back(_argument(1, "default"))(RedisCache.get)
    set = _fall_back(lambda args, kwargs: None)(RedisCache.set)
    # As if the key was free: allauth's rate limits take a lock with add(), and they let requests through (fail
    # open) rather than refuse every sign-in while the cache is down.
    add = _fall_back(lambda args, kwargs: True)(RedisCache.add)
    touch = _fall_back(lambda args, kwargs: False)(RedisCache.touch)
    delete = _fall_back(lambda args, kwargs: False)(RedisCache.delete)
    get_many = _fall_back(lambda args, kwargs: {})(RedisCache.get_many)
    has_key = _fall_back(lambda args, kwargs: False)(RedisCache.has_key)
    set_many = _fall_back(lambda args, kwargs: list(args[0]) if args else [])(RedisCache.set_many)
    delete_many = _fall_back(lambda args, kwargs: None)(RedisCache.delete_many)
    clear = _fall_back(lambda args, kwargs: False)(RedisCache.clear)

    def client(self, *, write: bool = False) -> redis.Redis:
        """A redis.Redis on the cache's connection pool, for what Django's cache does not offer (a channel)."""
        return self._cache.get_client(write=write)

    @_fall_back(lambda args, kwargs: None)
    def publish(self, channel: str, messages: list[str]) -> None:
        """Publish each message on channel, in one round trip."""
        with self.client(write=True).pipeline(transaction=False) as pipe:
            for message in messages:
                pipe.publish(channel, message)
            pipe.execute()
