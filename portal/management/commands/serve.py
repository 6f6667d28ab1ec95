"""Run the whole portal as children of one process: Valkey (when needed), gunicorn, the SSH server and a worker."""

import os
import secrets
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

from portal import supervisor
from portal.supervisor import Child, RestartPolicy, Supervisor, SupervisorError

QUEUES = ("default", "builds", "deploys")
FIRST_ADMIN_USERNAME = "admin"


def gunicorn_command() -> list[str]:
    """gunicorn with threaded workers on PORTAL_HTTP_HOST:PORTAL_HTTP_PORT, access log on stdout."""
    from gunicorn.config import KNOWN_SETTINGS

    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "portal.wsgi",
        "--worker-class",
        "gthread",
        "--workers",
        str(settings.PORTAL_WEB_WORKERS),
        "--threads",
        str(settings.PORTAL_WEB_THREADS),
        "--bind",
        f"{settings.PORTAL_HTTP_HOST}:{settings.PORTAL_HTTP_PORT}",
        # git's hooks reach the portal here (repos/internal.py); only this user can connect to it.
        "--bind",
        f"unix:{settings.PORTAL_INTERNAL_SOCKET}",
        "--umask",
        "0o077",
        # The gthread main loop keeps beating while requests stream in threads, so a long clone is not cut
        # by this; it only catches a worker that is stuck as a whole.
        "--timeout",
        "60",
        "--graceful-timeout",
        "10",
        "--access-logfile",
        "-",
        # Its post_worker_init warms the thread that takes a worker's first requests.
        "--config",
        "python:portal.gunicorn_hooks",
    ]
    # gunicorn 27 opens a control socket per user by default; two portals (or a test run) would fight over it.
    if any(setting.name == "control_socket_disable" for setting in KNOWN_SETTINGS):
        command.append("--no-control-socket")
    return command


def manage_command(*args: str) -> list[str]:
    return [sys.executable, str(settings.BASE_DIR / "manage.py"), *args]


def clone_url_forms() -> list[str]:
    """The clone URL forms of a repository, the same ones the repository page shows."""
    host, port = settings.PORTAL_SSH_DOMAIN, settings.PORTAL_SSH_PORT
    forms = [f"ssh://git@{host}:{port}/<owner>/<repo>.git"]
    if port == 22:
        forms = [f"ssh://git@{host}/<owner>/<repo>.git", f"git@{host}:<owner>/<repo>.git"]
    forms.append(f"{settings.PORTAL_BASE_URL}/<owner>/<repo>.git")
    return forms


# The longest path a unix socket may have on Linux (sun_path holds 108 bytes with its terminating NUL).
MAX_SOCKET_PATH = 107


class Command(BaseCommand):
    help = (
        "Start the portal (web, SSH, worker, cron and, without REDIS_URL, an embedded Valkey), start again a part "
        "that dies, and stop it all on Ctrl-C."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--stop-timeout",
            type=float,
            default=10.0,
            help="Seconds each child gets to stop after SIGTERM before it is killed (default 10).",
        )

    def say(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()

    def handle(self, *args, **options):
        # A unix socket's path holds at most 107 bytes; past that the web or Valkey would fail to bind much later.
        sockets = [settings.PORTAL_INTERNAL_SOCKET] + ([] if os.environ.get("REDIS_URL") else [settings.REDIS_SOCKET])
        for socket_path in sockets:
            if len(os.fsencode(socket_path)) > MAX_SOCKET_PATH:
                raise CommandError(
                    f"{socket_path} is longer than the {MAX_SOCKET_PATH} bytes a unix socket's path may have:"
                    " set PORTAL_VAR_DIR to a shorter directory"
                )
        first_password = self.prepare_database()
        if not settings.DEBUG:
            # whitenoise serves the collected, compressed files in production mode.
            call_command("collectstatic", interactive=False, verbosity=0)
        else:
            # In development whitenoise serves from the apps' folders, but it warns when STATIC_ROOT is missing.
            settings.STATIC_ROOT.mkdir(parents=True, exist_ok=True)
        # Children open their own connections; an inherited SQLite handle must not be shared.
        connections.close_all()

        restart = RestartPolicy(
            backoff=settings.PORTAL_SERVE_RESTART_BACKOFF,
            backoff_max=settings.PORTAL_SERVE_RESTART_BACKOFF_MAX,
            max_failures=settings.PORTAL_SERVE_MAX_FAILURES,
            window=settings.PORTAL_SERVE_FAILURE_WINDOW,
        )
        boss = Supervisor(
            stop_timeout=options["stop_timeout"], restart=restart, log=lambda line: self.say(f"serve: {line}")
        )
        boss.install_signal_handlers()
        try:
            env = self.child_environment(boss)
            self.start_children(boss, env)
        except (SupervisorError, OSError) as error:
            boss.stop_all()
            # The account exists now: its password must not be lost with a failed start.
            self.show_first_admin(first_password)
            raise CommandError(str(error)) from error
        if boss.stop_requested is None:
            self.print_banner(env)
        # After the children's start-up messages (Valkey's, for one), so that nothing comes between it and the reader.
        self.show_first_admin(first_password)
        status = boss.run()
        self.say("serve: every process has stopped")
        if status:
            raise CommandError(
                "a child process kept failing; the portal was stopped (see the messages above)", returncode=1
            )

    def prepare_database(self) -> str | None:
        """Apply pending migrations and create the first administrator on a fresh database; returns its password."""
        connection = connections[DEFAULT_DB_ALIAS]
        executor = MigrationExecutor(connection)
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            self.say("serve: applying database migrations")
            call_command("migrate", interactive=False, verbosity=0)

        from portal.models import User
        from portal.services import create_user

        if User.objects.exists():
            return None
        password = secrets.token_urlsafe(16)
        create_user(
            actor=None,
            username=FIRST_ADMIN_USERNAME,
            email="",
            password=password,
            is_admin=True,
            must_change_password=True,
        )
        return password

    def show_first_admin(self, password: str | None) -> None:
        if password is None:
            return
        rule = "  " + "=" * 68
        self.say(
            "\n".join(
                [
                    "",
                    rule,
                    "  First start: created the administrator account.",
                    "",
                    f"      username:  {FIRST_ADMIN_USERNAME}",
                    f"      password:  {password}",
                    "",
                    "  This password is shown only this once. Sign in with it and choose your own:",
                    "  the portal asks for a new one at the first sign-in.",
                    rule,
                    "",
                ]
            )
        )

    def child_environment(self, boss: Supervisor) -> dict[str, str]:
        """The children's environment, with REDIS_URL pointing at a server that answers (started here if needed)."""
        env = dict(os.environ, PYTHONUNBUFFERED="1", DJANGO_SETTINGS_MODULE="portal.settings")
        redis_url = os.environ.get("REDIS_URL")
        if redis_url:
            supervisor.wait_for_redis(redis_url, timeout=10)
            self.redis_description = f"{redis_url} (REDIS_URL)"
            return env
        socket_path = settings.REDIS_SOCKET

        def launch():
            return supervisor.start_valkey(socket_path, settings.VAR_DIR / "valkey", env=env)

        process = launch()
        child = Child(name="valkey", command=process.args, env=env, stop_last=True, process=process, launch=launch)
        boss.adopt(child)
        redis_url = f"unix://{socket_path}"
        # The web, SSH and worker processes connect at once, so Valkey must answer before they start.
        supervisor.wait_for_redis(redis_url, process=process)
        env["REDIS_URL"] = redis_url
        self.redis_description = f"embedded Valkey on {redis_url}"
        return env

    def start_children(self, boss: Supervisor, env: dict[str, str]) -> None:
        cwd = settings.BASE_DIR
        # The hooks' socket lives in a directory of its own that no other user may enter.
        settings.PORTAL_INTERNAL_SOCKET.parent.mkdir(parents=True, exist_ok=True)
        settings.PORTAL_INTERNAL_SOCKET.parent.chmod(0o700)
        boss.start(Child("web", gunicorn_command(), env, cwd))
        boss.start(Child("ssh", manage_command("sshd"), env, cwd))
        # A worker per queue, so that an hour-long build never holds up a deployment, an email or a webhook.
        boss.start(Child("worker", manage_command("rqworker", "default", "--with-scheduler"), env, cwd))
        boss.start(Child("builds-worker", manage_command("rqworker", "builds"), env, cwd))
        boss.start(Child("deploys-worker", manage_command("rqworker", "deploys"), env, cwd))
        # rq's cron scheduler runs the job reconciler every minute (portal/cron.py).
        boss.start(Child("cron", manage_command("rqcron", "portal.cron"), env, cwd))

    def print_banner(self, env: dict[str, str]) -> None:
        lines = [
            "",
            "  Portal is running. Stop it with Ctrl-C.",
            f"    web:     {settings.PORTAL_BASE_URL}/  (gunicorn on {settings.PORTAL_HTTP_HOST}:{settings.PORTAL_HTTP_PORT})",
            f"    ssh:     {settings.PORTAL_SSH_HOST}:{settings.PORTAL_SSH_PORT}",
            f"    workers: one per rq queue ({', '.join(QUEUES)}), the first with the scheduler",
            f"    cron:    the job reconciler, every {settings.PORTAL_JOB_RECONCILE_INTERVAL} seconds",
            f"    redis:   {self.redis_description}",
            "  Clone URLs:",
            *(f"    {form}" for form in clone_url_forms()),
            "",
        ]
        self.say("\n".join(lines))
