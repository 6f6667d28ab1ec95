"""`manage.py authorized_keys <type> <key>`: OpenSSH's AuthorizedKeysCommand for portal keys.

Prints one `command="…",restrict <key>` line for a registered key, and nothing for any other key, so
OpenSSH on port 22 can stand in for the embedded server."""

import shlex
import sys

import asyncssh
from django.conf import settings
from django.core.management.base import BaseCommand

from repos.transport import ssh_key_principal


class Command(BaseCommand):
    help = "Print the authorized_keys line for a registered key (sshd_config: AuthorizedKeysCommand ... %t %k)."
    # sshd reads its output, once per offered key: no system checks here (`manage.py check` runs them).
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("key_type", help="The key's type, %%t in sshd_config.")
        parser.add_argument("key_data", help="The base64 key, %%k in sshd_config.")
        parser.add_argument(
            "--manage",
            default=None,
            help="The command that runs manage.py, such as a wrapper that sets the portal's environment "
            "(default: this Python and this manage.py).",
        )

    def handle(self, *args, **options):
        try:
            key = asyncssh.import_public_key(f"{options['key_type']} {options['key_data']}")
        except (asyncssh.KeyImportError, ValueError):
            # Not a key we could ever have registered: print nothing, and sshd refuses it.
            return
        found = ssh_key_principal(fingerprint=key.get_fingerprint("sha256"))
        if found is None:
            return
        ssh_key, _ = found
        manage = options["manage"] or shlex.join([sys.executable, str(settings.BASE_DIR / "manage.py")])
        command = f"{manage} serv key-{ssh_key.pk}"
        # Inside command="…" only a double quote (and the backslash that escapes it) is special.
        quoted = command.replace("\\", "\\\\").replace('"', '\\"')
        self.stdout.write(f'command="{quoted}",restrict {ssh_key.public_key}')
