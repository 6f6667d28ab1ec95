"""A webhook receiver on a loopback address for tests: it records what it got and answers as told."""

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver(ThreadingHTTPServer):
    """Answers each request with the next of statuses (the last one again once they run out), after delay seconds.

    requests holds (method, path, body) of each request; received holds (headers, body)."""

    daemon_threads = True

    def __init__(
        self, host: str, *, status: int = 200, statuses=(), body: bytes = b"ok", headers: dict | None = None, delay=0.0
    ):
        class Handler(BaseHTTPRequestHandler):
            def _answer(handler) -> None:
                length = int(handler.headers.get("Content-Length") or 0)
                content = handler.rfile.read(length)
                with self.lock:
                    self.requests.append((handler.command, handler.path, content))
                    self.received.append((dict(handler.headers.items()), content))
                    answer = self.statuses.pop(0) if len(self.statuses) > 1 else (self.statuses or [self.status])[0]
                if self.delay:
                    self.release.wait(self.delay)
                handler.send_response(answer)
                for name, value in self.headers.items():
                    handler.send_header(name, value)
                handler.send_header("Content-Length", str(len(self.body)))
                handler.end_headers()
                handler.wfile.write(self.body)

            do_POST = do_GET = _answer

            def log_message(handler, *args) -> None:
                pass

        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, 0), Handler)
        self.status, self.statuses, self.body, self.headers = status, list(statuses), body, headers or {}
        self.delay, self.release, self.lock = delay, threading.Event(), threading.Lock()
        self.requests: list[tuple[str, str, bytes]] = []
        self.received: list[tuple[dict, bytes]] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://[{host}]:{port}/hook" if ":" in host else f"http://{host}:{port}/hook"

    def stop(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()
