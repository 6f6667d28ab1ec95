"""What pre-receive and post-receive share: read git's ref updates, ask the portal, print its answer.

Standard library only and no Django, so that a push does not pay for starting the web application.
"""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

ZERO = ("0" * 40, "0" * 64)
TIMEOUT_SECONDS = 120


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


def post(url, payload):
    """POST JSON and return the decoded answer, also for refusals sent with an error status."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"PORTAL_HOOK_URL must be an http(s) URL, not {url[:80]!r}")
    request = urllib.request.Request(  # noqa: S310 (the scheme is checked above)
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    # The portal is reached directly: a proxy from the environment must not see the push secret.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            return json.loads(response.read().decode())
    except urllib.error.HTTPError as exc:
        try:
            return json.loads(exc.read().decode())
        except ValueError:
            return {"ok": False, "messages": [f"the portal answered {exc.code} {exc.reason}"]}


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
        answer = post(f"{url}/{hook}", payload)
    except (OSError, ValueError) as exc:
        print(f"portal: could not reach the portal to {hook.replace('-', ' ')} this push: {exc}", file=sys.stderr)
        return 1 if refuses else 0
    for message in answer.get("messages", []):
        print(message, file=sys.stderr)
    return 0 if answer.get("ok") else 1
