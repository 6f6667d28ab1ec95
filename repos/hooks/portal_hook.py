"""What pre-receive and post-receive share: read git's ref updates, ask the portal, print its answer.

Standard library only and no Django, so that a push does not pay for starting the web application.
"""

import http.client
import json
import os
import socket
import subprocess
import sys
import urllib.parse

ZERO = ("0" * 40, "0" * 64)
TIMEOUT_SECONDS = 120
RECORDED_LATER = "portal: the push was accepted; the portal will record it (and update its pull requests) shortly."


def read_updates(lines):
    """Parse `old new ref` lines; a forced update is one whose old commit is not an ancestor of the new one."""
    updates = []
    for line in lines:
        line = line.rstrip("\n")
        if not line:
            continue
        old, new, ref = line.split(" ", 2)
        updates.append({"ref": ref, "old": old, "new": new, "forced": is_forced(old, new)})
    return updates


def is_forced(old, new):
    if old in ZERO or new in ZERO:
        return False
    # This runs inside git's quarantine environment, so the pushed objects are visible here even
    # before git has moved them into the repository; the portal's web process could not see them.
    result = subprocess.run(
        ["git", "merge-base", "--is-ancestor", old, new],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # 1 means "not an ancestor"; anything else (say, a tag of a tree) cannot be a fast-forward either.
    return result.returncode != 0


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP to the portal's unix socket (the one `manage.py serve` binds for the hooks)."""

    def __init__(self, socket_path, host, timeout):
        super().__init__(host, timeout=timeout)
        self.socket_path = socket_path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def post(url, payload, socket_path=None):
    """POST JSON and return the decoded answer, also for refusals sent with an error status.

    With socket_path the request goes through that unix socket, and the URL only names its host and path."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"PORTAL_HOOK_URL must be an http(s) URL, not {url[:80]!r}")
    # The portal is reached directly: no proxy from the environment may see the push secret.
    if socket_path:
        connection = UnixHTTPConnection(socket_path, parts.netloc, TIMEOUT_SECONDS)
    elif parts.scheme == "https":
        connection = http.client.HTTPSConnection(parts.netloc, timeout=TIMEOUT_SECONDS)
    else:
        connection = http.client.HTTPConnection(parts.netloc, timeout=TIMEOUT_SECONDS)
    try:
        connection.request(
            "POST", parts.path, body=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    try:
        answer = json.loads(body.decode())
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        return {"ok": False, "messages": [f"the portal answered {response.status} {response.reason}"]}
    return answer


def main(hook):
    url = os.environ.get("PORTAL_HOOK_URL")
    push_id = os.environ.get("PORTAL_PUSH_ID")
    secret = os.environ.get("PORTAL_PUSH_SECRET")
    refuses = hook == "pre-receive"
    if not (url and push_id and secret):
        if refuses:
            print(
                "portal: pushes are only accepted through the portal's SSH or HTTPS service;"
                " this git process has no push session (was git run by hand on the server?)",
                file=sys.stderr,
            )
            return 1
        return 0
    updates = read_updates(sys.stdin)
    payload = {"push_id": push_id, "secret": secret, "updates": updates}
    try:
        answer = post(f"{url}/{hook}", payload, os.environ.get("PORTAL_HOOK_SOCKET"))
    except (OSError, ValueError, http.client.HTTPException) as exc:
        if not refuses:
            print(RECORDED_LATER, file=sys.stderr)
            return 0
        print(f"portal: could not reach the portal to check this push: {exc}", file=sys.stderr)
        return 1
    if not refuses and not answer.get("ok"):
        # The refs have moved whatever the portal answered: the portal's ref reconciler records them.
        print(RECORDED_LATER, file=sys.stderr)
        return 0
    for message in answer.get("messages", []):
        print(message, file=sys.stderr)
    return 0 if answer.get("ok") else 1
