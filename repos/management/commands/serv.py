"""`manage.py serv key-<id>`: what OpenSSH runs for a portal key (see `authorized_keys`).

It applies the same parsing and access checks as the embedded server, then replaces itself with git,
so git talks to the SSH channel directly."""

import os
import re
import signal
import subprocess
import sys

from django.core.management.base import BaseCommand
from django.db import connections

from portal import services as accounts
from repos.sshd import greeting
from repos.transport import CommandRefused, GitInvocation, end_push, prepare_git_command, ssh_key_principal


class Command(BaseCommand):
    help = "Run the git service named in SSH_ORIGINAL_COMMAND for a registered key (used by OpenSSH)."
    # Its stderr is the git client's: a system check's warning would show in every fetch and push (and the
    # checks would slow each one down). `manage.py check` and the other processes run them.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("key", help="key-<id>, as written by `manage.py authorized_keys`.")

    def handle(self, *args, **options):
        match = re.fullmatch(r"key-(\d{1,18})", options["key"])
        if match is None:
            self._refuse("Unknown key reference; the authorized_keys command line is wrong.")
        found = ssh_key_principal(key_id=int(match.group(1)))
        if found is None:
            # Revoked between OpenSSH's lookup and now, or its user was deactivated.
            self._refuse("This key is not registered with portal (or was revoked).")
        key, principal = found
        accounts.touch_ssh_key(key)
        command = os.environ.get("SSH_ORIGINAL_COMMAND")
        if not command:
            sys.stdout.write(greeting(principal) + "\n")
            sys.stdout.flush()
            raise SystemExit(1)
        try:
            invocation = prepare_git_command(
                principal, command, protocol="ssh", git_protocol=os.environ.get("GIT_PROTOCOL")
            )
        except CommandRefused as exc:
            self._refuse(str(exc))
        # git inherits nothing of Django but the environment we built; close the database first.
        connections.close_all()
        sys.stdout.flush()
        os.chdir(invocation.repository.path)
        if "PORTAL_PUSH_ID" not in invocation.env:
            # A fetch leaves nothing behind: git replaces this process and talks to the SSH channel directly.
            # The argv comes from repos.git.service_command on a resolved path, never from the client.
            os.execvpe(invocation.argv[0], invocation.argv, invocation.env)  # noqa: S606
        raise SystemExit(self._push(invocation))

    def _push(self, invocation: GitInvocation) -> int:
        """Run git for a push on the inherited SSH channel, then delete its push session, however git ended."""
        git_process = None
        went_away: list[int] = []

        def go_away(signum: int, frame: object) -> None:
            # OpenSSH hangs up (SIGHUP) or stops (SIGTERM) this process when the client goes away: that ends the
            # wait below with SystemExit, so that the session is still deleted. Until git's handle is kept here
            # (git may already be talking to the client), it is noted, and raised once git can be stopped.
            if git_process is None:
                went_away.append(signum)
                return
            raise SystemExit(128 + signum)

        for signum in (signal.SIGHUP, signal.SIGTERM):
            signal.signal(signum, go_away)
        try:
            git_process = subprocess.Popen(invocation.argv, env=invocation.env)  # noqa: S603
            if went_away:
                raise SystemExit(128 + went_away[0])
            status = git_process.wait()
            # Killed by a signal: report it the way a shell would.
            return status if status >= 0 else 128 - status
        finally:
            if git_process is not None and git_process.poll() is None:
                git_process.kill()
                git_process.wait()
            end_push(invocation.env)
            connections.close_all()

    def _refuse(self, message: str) -> None:
        sys.stderr.write(message.replace("\n", " ") + "\n")
        sys.stderr.flush()
        raise SystemExit(1)
