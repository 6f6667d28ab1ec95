"""Where the portal's processes log, and Python's warnings with them.

Every entry point (manage.py, portal.wsgi) calls capture_warnings() before it imports Django, so a warning
raised while a dependency is imported goes to the log like any other, never straight to stderr."""

import logging

# Commands that OpenSSH runs: the stdout and stderr of `serv` are the git client's, those of `authorized_keys`
# are sshd's, so these log to a file instead.
OPENSSH_COMMANDS = ("serv", "authorized_keys")

# Set by manage.py before the settings are read; the settings then point the log at a file.
log_to_file = False


def capture_warnings(argv: list[str] | None = None) -> None:
    """Route Python's warnings to the `py.warnings` logger (and, for OpenSSH's commands, the log to a file)."""
    global log_to_file
    log_to_file = bool(argv) and len(argv) > 1 and argv[1] in OPENSSH_COMMANDS
    if log_to_file:
        # A log that cannot be written (a read-only var/) must not print its own error to the git client.
        logging.raiseExceptions = False
    logging.captureWarnings(True)
    # Until the settings' LOGGING replaces it, this handler keeps early warnings away from logging's last
    # resort, which is stderr.
    warnings_logger = logging.getLogger("py.warnings")
    if not warnings_logger.handlers:
        warnings_logger.addHandler(logging.NullHandler())
