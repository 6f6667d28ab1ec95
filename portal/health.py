"""GET /-/health: what is up, for monitoring and load balancers, without a secret in it.

The answer is 503 only when the database is down, because then no page can be served. Redis, the worker, the
SSH server and a nearly full disk make it "degraded" with 200: pages are still served (computed without the
cache, jobs waiting in the database until the queue and a worker are back), so a load balancer keeps the web
process, and monitoring reads which check failed."""

import contextlib
import ipaddress
import os
import shutil
import socket
import time

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from rq import Worker

UP, DOWN, UNKNOWN, LOW = "up", "down", "unknown", "low"
# Connect and answer timeouts of each check, in seconds: a stuck service makes the answer slow, never hung.
TIMEOUT = 2


def _error(error: Exception) -> str:
    # The kind of failure only: messages can carry URLs, host names or paths.
    return type(error).__name__


def check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:
        return {"status": DOWN, "error": _error(error)}
    return {"status": UP}


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT)


def check_redis() -> dict:
    try:
        _redis().ping()
    except Exception as error:
        return {"status": DOWN, "error": _error(error)}
    return {"status": UP}


def _gone(worker: Worker) -> bool:
    """A worker of this host whose process no longer exists: killed before it could sign off, it stays
    registered in Redis until its registration expires."""
    if worker.hostname != socket.gethostname() or not worker.pid:
        return False
    try:
        os.kill(worker.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def check_worker() -> dict:
    """rq workers registered in Redis whose process lives, and how long ago the latest of them beat: up when every
    queue has one, with the queues that have none named."""
    try:
        workers = [worker for worker in Worker.all(connection=_redis()) if not _gone(worker)]
        listened = {name for worker in workers for name in worker.queue_names()}
    except Exception as error:
        return {"status": UNKNOWN, "error": _error(error)}
    beats = [worker.last_heartbeat for worker in workers if worker.last_heartbeat is not None]
    missing = [name for name in settings.RQ_QUEUES if name not in listened]
    answer = {"status": DOWN if missing else UP, "workers": len(workers)}
    if missing:
        answer["queues_without_a_worker"] = missing
    if beats:
        answer["last_heartbeat_seconds_ago"] = max(0, round(time.time() - max(beats).timestamp()))
    return answer


def check_ssh() -> dict:
    """The SSH server answers on its port with an SSH banner."""
    host = settings.PORTAL_SSH_HOST or "127.0.0.1"
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).is_unspecified:
            # Listening on every address: ask on loopback.
            host = "::1" if ":" in host else "127.0.0.1"
    try:
        with socket.create_connection((host, settings.PORTAL_SSH_PORT), timeout=TIMEOUT) as ssh:
            banner = ssh.recv(64)
    except OSError as error:
        return {"status": DOWN, "error": _error(error)}
    if not banner.startswith(b"SSH-"):
        return {"status": DOWN, "error": "no SSH banner"}
    return {"status": UP}


def check_disk() -> dict:
    """Free space where the portal keeps its data (repositories, database, queue), in bytes and percent."""
    try:
        usage = shutil.disk_usage(settings.VAR_DIR)
    except OSError as error:
        return {"status": UNKNOWN, "error": _error(error)}
    low = usage.free < settings.PORTAL_HEALTH_MIN_FREE_MB * 1024 * 1024
    return {
        "status": LOW if low else UP,
        "free_bytes": usage.free,
        "free_percent": round(100 * usage.free / usage.total, 1) if usage.total else 0.0,
    }


CHECKS = {
    "database": check_database,
    "redis": check_redis,
    "worker": check_worker,
    "ssh": check_ssh,
    "disk": check_disk,
}
# Without these no page can be served: the answer is 503 when one is down.
ESSENTIAL = ("database",)


def report() -> tuple[int, dict]:
    """The HTTP status and the body of the health answer."""
    checks = {name: check() for name, check in CHECKS.items()}
    if any(checks[name]["status"] != UP for name in ESSENTIAL):
        status, overall = 503, "down"
    elif any(check["status"] != UP for check in checks.values()):
        status, overall = 200, "degraded"
    else:
        status, overall = 200, "ok"
    return status, {"status": overall, "checks": checks}


@never_cache
def health(request: HttpRequest) -> JsonResponse:
    status, body = report()
    return JsonResponse(body, status=status)
