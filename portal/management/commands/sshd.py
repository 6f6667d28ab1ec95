"""`manage.py sshd`: the embedded SSH server for git, on its own."""

import asyncio
import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from repos.sshd import serve_forever


class Command(BaseCommand):
    help = "Run the embedded SSH server for git (PORTAL_SSH_HOST:PORTAL_SSH_PORT) until SIGINT or SIGTERM."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=None, help="Address to listen on (default: PORTAL_SSH_HOST).")
        parser.add_argument("--port", type=int, default=None, help="Port to listen on (default: PORTAL_SSH_PORT).")

    def handle(self, *args, **options):
        host = options["host"] or settings.PORTAL_SSH_HOST
        port = options["port"] if options["port"] is not None else settings.PORTAL_SSH_PORT
        asyncio.run(self._run(host, port))

    async def _run(self, host: str, port: int) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)

        def ready(bound: int) -> None:
            self.stdout.write(f"SSH server for git on {host}:{bound} (host key {settings.PORTAL_SSH_HOST_KEY})")
            self.stdout.flush()

        await serve_forever(host, port, settings.PORTAL_SSH_HOST_KEY, stop, ready)
        self.stdout.write("SSH server stopped.")
