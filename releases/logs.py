"""A build's or a deployment's log: written by the worker as it runs, read by offset by whoever watches it.

While the build runs, the worker appends each line to a file of its own disk and, a few times a second, the new
bytes to a Redis string (APPEND), so that a viewer on any web process, on any machine, asks for the bytes after
the offset it has (GETRANGE) and holds no thread while it waits: the browser asks again. When the build ends, the
whole log goes to the artifact store (releases/storage.py) under logs/, which is where it is read from then; the
Redis string expires a minute later, so that a viewer between the two still finds it.

The lines were masked by the runner before they got here: no secret reaches Redis or the store. Redis is a
convenience here, not the record: when it is unreachable or emptied mid-build, viewers see the log again as soon
as the worker writes it back whole (it notices APPEND answering a length other than the bytes it wrote), and the
stored log is made from the worker's file."""

import hashlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import django_rq
from django.core.files import File
from redis.exceptions import RedisError

from releases.storage import artifact_storage

logger = logging.getLogger(__name__)

# How often the worker sends what the build printed since it last did: the live log's delay is at most this.
FLUSH_SECONDS = 0.2
# A viewer gets at most this many bytes per request, so that a long log reaches a new viewer in pieces.
READ_LIMIT = 512 * 1024
# How long the Redis copy outlives the build (a viewer may still be reading it while the log is being stored).
EXPIRE_AFTER_END_SECONDS = 60


def _redis():
    return django_rq.get_connection("builds")


# A log's owner (a build, a deployment or one target's part in it) names where its log is: `log_key` in Redis,
# `log_stored_name` in the artifact store and `log_local_path` on the worker's disk, and says whether it `is_ended`.


def redis_key(build_id: int) -> str:
    return f"portal:build-log:{build_id}"


def stored_name(owner) -> str:
    return owner.log_stored_name


def local_path(owner) -> Path:
    return owner.log_local_path


class LogWriter:
    """The worker's side: lines to the local file at once, and to Redis by a thread every FLUSH_SECONDS."""

    def __init__(self, owner):
        self.owner = str(owner)
        self.key = owner.log_key
        self.name = owner.log_stored_name
        self.path = owner.log_local_path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = self.path.open("wb")
        self.written = 0
        # The digest of every byte written, for the build's provenance (releases/provenance.py).
        self.digest = hashlib.sha256()
        self.sent = 0
        self.pending: list[bytes] = []
        self.lock = threading.Lock()
        self.closed = threading.Event()
        self.redis_down = False
        self.thread = threading.Thread(target=self._send_loop, name=f"log {self.key}", daemon=True)
        self.thread.start()

    def line(self, text: str) -> None:
        data = (text + "\n").encode("utf-8", errors="replace")
        with self.lock:
            self.file.write(data)
            self.file.flush()
            self.written += len(data)
            self.digest.update(data)
            self.pending.append(data)

    def _send_loop(self) -> None:
        while not self.closed.wait(FLUSH_SECONDS):
            self._send()

    def _send(self, *, expire: int | None = None) -> None:
        with self.lock:
            data, self.pending = b"".join(self.pending), []
            written = self.written
        try:
            client = _redis()
            key = self.key
            length = client.append(key, data) if data else (client.strlen(key) if self.sent else 0)
            if length != written:
                # Redis lost the string (emptied, restarted without it) or missed a piece: send it whole.
                with self.lock:
                    self.file.flush()
                    whole = self.path.read_bytes()
                    self.pending = []
                    written = self.written = len(whole)
                client.set(key, whole)
            self.sent = written
            if expire is not None:
                client.expire(key, expire)
            if self.redis_down:
                logger.info("%s: Redis is back; its live log is sent again", self.owner)
                self.redis_down = False
        except RedisError as error:
            with self.lock:
                # Kept for the next try, which sends the file whole if what Redis has is behind.
                self.pending.insert(0, data)
            if not self.redis_down:
                logger.warning("%s: Redis unreachable, its live log waits (%s)", self.owner, error)
                self.redis_down = True

    def close(self) -> int:
        """Store the whole log and let its Redis copy expire; returns its size in bytes."""
        self.closed.set()
        self.thread.join()
        with self.lock:
            self.file.close()
        self._send(expire=EXPIRE_AFTER_END_SECONDS)
        store(self.name, self.path)
        return self.path.stat().st_size


def store(name: str, path: Path) -> None:
    storage = artifact_storage()
    if storage.exists(name):
        storage.delete(name)
    with path.open("rb") as content:
        storage.save(name, File(content))


def store_left_over(owner) -> int:
    """Store what a run whose worker was lost had printed: from this machine's file when this was its machine (the
    worker wrote each line there first, so it holds what Redis had not been sent yet), else from Redis; returns the
    size stored."""
    data = b""
    try:
        data = _redis().get(owner.log_key) or b""
    except RedisError:
        pass
    path = local_path(owner)
    if path.exists():
        local = path.read_bytes()
        if len(local) > len(data):
            data = local
    if not data:
        return 0
    temporary = path.with_suffix(".left-over")
    temporary.parent.mkdir(parents=True, exist_ok=True)
    temporary.write_bytes(data)
    try:
        store(stored_name(owner), temporary)
    finally:
        temporary.unlink()
    return len(data)


@dataclass(frozen=True)
class Chunk:
    data: bytes
    # The offset to ask for next.
    next_offset: int


def read(owner, offset: int, limit: int = READ_LIMIT) -> Chunk:
    """The log's bytes from offset (at most limit), wherever the log is now: stored once it ended, in
    Redis while it runs (or on this machine's disk when Redis has nothing and the owner runs here)."""
    offset = max(0, offset)
    storage = artifact_storage()
    name = stored_name(owner)
    if owner.is_ended and storage.exists(name):
        with storage.open(name, "rb") as stored:
            stored.seek(offset)
            data = stored.read(limit)
        return Chunk(data, offset + len(data))
    try:
        client = _redis()
        key = owner.log_key
        data = client.getrange(key, offset, offset + limit - 1)
        if data or client.exists(key):
            return Chunk(data, offset + len(data))
    except RedisError:
        pass
    path = local_path(owner)
    if path.exists():
        with path.open("rb") as local:
            local.seek(offset)
            data = local.read(limit)
        return Chunk(data, offset + len(data))
    if storage.exists(name):
        with storage.open(name, "rb") as stored:
            stored.seek(offset)
            data = stored.read(limit)
        return Chunk(data, offset + len(data))
    return Chunk(b"", offset)


def read_all(owner) -> bytes:
    """The whole log as it is now."""
    parts = []
    offset = 0
    while True:
        chunk = read(owner, offset)
        if not chunk.data:
            return b"".join(parts)
        parts.append(chunk.data)
        offset = chunk.next_offset


def remove(owner) -> None:
    """Remove the stored log (retention), and the copies read() would otherwise still serve: the worker's file when
    it ran on this machine, and the Redis string if it has not expired yet."""
    storage = artifact_storage()
    name = stored_name(owner)
    if storage.exists(name):
        storage.delete(name)
    local_path(owner).unlink(missing_ok=True)
    try:
        _redis().delete(owner.log_key)
    except RedisError:
        # It expires on its own a minute after it ended.
        pass
