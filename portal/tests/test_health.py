"""GET /-/health: each part up or down as it really is (a real Redis, rq worker and SSH server), the status code a
load balancer reads, nothing cached and no secret in the answer."""

import json
import socket

import pytest
from django.db import connection
from rq import Worker


@pytest.fixture
def worker(rq_queues):
    """A real rq worker registered in Redis, as `rqworker` registers itself at start."""
    queues = list(rq_queues.values())
    worker = Worker(queues, connection=queues[0].connection)
    worker.register_birth()
    worker.heartbeat()
    yield worker
    worker.register_death()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_every_part_up_is_ok_with_nothing_cached_and_no_secret(client, ssh_server, worker, settings):
    settings.PORTAL_HEALTH_MIN_FREE_MB = 0
    response = client.get("/-/health")

    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] == "ok"
    checks = answer["checks"]
    assert {name: check["status"] for name, check in checks.items()} == {
        "database": "up",
        "redis": "up",
        "worker": "up",
        "ssh": "up",
        "disk": "up",
    }
    assert checks["worker"]["workers"] == 1
    assert checks["worker"]["last_heartbeat_seconds_ago"] >= 0
    assert checks["disk"]["free_bytes"] > 0 and 0 < checks["disk"]["free_percent"] <= 100
    assert "no-cache" in response["Cache-Control"] and "no-store" in response["Cache-Control"]
    body = response.content.decode()
    for secret in (settings.REDIS_URL, str(settings.VAR_DIR), settings.SECRET_KEY, str(settings.GIT_ROOT)):
        assert secret not in body


def test_redis_ssh_and_the_worker_down_are_degraded_not_down(client, db, settings, tmp_path):
    settings.REDIS_URL = f"unix://{tmp_path / 'no-valkey.sock'}"
    settings.PORTAL_SSH_PORT = closed_port()
    settings.PORTAL_HEALTH_MIN_FREE_MB = 0

    response = client.get("/-/health")

    # Pages are still served (computed without the cache): a load balancer keeps this web process.
    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] == "degraded"
    assert answer["checks"]["database"] == {"status": "up"}
    assert answer["checks"]["redis"] == {"status": "down", "error": "ConnectionError"}
    assert answer["checks"]["worker"] == {"status": "unknown", "error": "ConnectionError"}
    assert answer["checks"]["ssh"] == {"status": "down", "error": "ConnectionRefusedError"}
    assert str(tmp_path) not in response.content.decode()


def test_a_worker_whose_process_is_gone_is_not_counted(client, rq_queues, worker, settings):
    # Killed before it could sign off, a worker stays registered in Redis until its registration expires.
    worker.pid = 2**22 + 1
    worker.connection.hset(worker.key, "pid", worker.pid)
    assert json.loads(client.get("/-/health").content)["checks"]["worker"] == {
        "status": "down",
        "workers": 0,
        "queues_without_a_worker": ["default", "builds", "deploys"],
    }


def test_a_queue_without_a_worker_is_down(client, rq_queues, settings):
    queue = rq_queues["default"]
    worker = Worker([queue, rq_queues["builds"]], connection=queue.connection)
    worker.register_birth()
    try:
        check = json.loads(client.get("/-/health").content)["checks"]["worker"]
    finally:
        worker.register_death()
    assert (check["status"], check["workers"], check["queues_without_a_worker"]) == ("down", 1, ["deploys"])


def test_a_disk_nearly_full_is_low(client, db, settings):
    settings.PORTAL_HEALTH_MIN_FREE_MB = 2**40
    answer = client.get("/-/health").json()
    assert answer["checks"]["disk"]["status"] == "low"
    assert answer["status"] == "degraded"


def test_the_database_down_is_503(client, transactional_db, tmp_path):
    # The database cannot be opened: the one check that takes the portal out of a load balancer.
    database = connection.settings_dict
    saved = dict(database)
    connection.close()
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database["NAME"] = str(tmp_path / "no-such-folder" / "portal.sqlite3")
    else:
        # A port nothing listens on.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        database |= {"HOST": "127.0.0.1", "PORT": str(port)}
    try:
        response = client.get("/-/health")
    finally:
        connection.close()
        database.clear()
        database.update(saved)
    assert response.status_code == 503
    answer = response.json()
    assert answer["status"] == "down"
    assert answer["checks"]["database"] == {"status": "down", "error": "OperationalError"}
    assert str(tmp_path) not in response.content.decode()
