"""Git's smart HTTP protocol: clone, fetch and push over HTTP(S), authenticated by personal access tokens (or,
for fetches only, by a repository's short-lived read token: repos/read_tokens.py).

Read or write is decided by the service named in the path (the `service` parameter of info/refs only
picks between the two known services). git runs in stateless-RPC mode and its output is streamed, so
no pack is ever held in memory.
"""

import base64
import binascii
import gzip
from collections.abc import Iterator
from itertools import chain
from typing import BinaryIO

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from portal import services as accounts
from portal.models import AccessToken
from repos import git, read_tokens, transport
from repos.access import Principal, get_repo_for_principal
from repos.models import Repository

HTTP_SERVICES = ("git-upload-pack", "git-receive-pack")
PASSWORDS_REFUSED = (
    "Passwords are not accepted for git over HTTPS: "
    "use your username and a personal access token (Settings, Access tokens) as the password."
)
NO_CACHE = {
    "Cache-Control": "no-cache, max-age=0, must-revalidate",
    "Expires": "Fri, 01 Jan 1980 00:00:00 GMT",
    "Pragma": "no-cache",
}


class Refused(Exception):
    """Stops a git request with a plain-text answer, which git prints as `remote:` lines."""

    def __init__(self, status: int, message: str, *, challenge: bool = False):
        super().__init__(message)
        self.status = status
        self.challenge = challenge

    def response(self) -> HttpResponse:
        response = HttpResponse(f"{self}\n", status=self.status, content_type="text/plain; charset=utf-8")
        if self.challenge:
            response["WWW-Authenticate"] = 'Basic realm="portal"'
        return response


def _principal(request: HttpRequest) -> Principal:
    """Who the Basic credentials name: a user with a token, or nobody when there are none."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        return Principal()
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise Refused(401, "Use HTTP Basic authentication: your username and a personal access token.", challenge=True)
    try:
        username, colon, secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise Refused(401, "Malformed Basic credentials.", challenge=True)
    if not colon or not username:
        raise Refused(401, "Give your username and a personal access token.", challenge=True)
    if username.startswith(AccessToken.PREFIX) and secret in ("", "x-oauth-basic"):
        # Gitea's form: the token as the user name and no password (https://<token>@host/owner/repo.git).
        token = accounts.authenticate_token(username)
        if token is None:
            raise Refused(401, "This token is invalid, expired or revoked.", challenge=True)
        return Principal(user=token.user, token=token)
    if username == read_tokens.USERNAME:
        repository_id = read_tokens.repository_id(secret)
        if repository_id is None:
            raise Refused(401, "This read token is invalid or expired.", challenge=True)
        return Principal(read_token_repository_id=repository_id)
    if not secret.startswith(AccessToken.PREFIX):
        raise Refused(401, PASSWORDS_REFUSED, challenge=True)
    token = accounts.authenticate_token(secret)
    if token is None or token.user.username.lower() != username.lower():
        raise Refused(401, "This token is invalid, expired or revoked, or belongs to another user.", challenge=True)
    return Principal(user=token.user, token=token)


def get_repo_for_git(request: HttpRequest, owner: str, name: str, service: str) -> tuple[Principal, Repository]:
    """The repository a git service may run on for these credentials, through the access door."""
    principal = _principal(request)
    try:
        repo = get_repo_for_principal(principal, owner, name, need=transport.SERVICE_ROLES[service])
    except Http404:
        # Anonymous callers cannot tell a private repository from a missing one: both ask for credentials.
        if principal.is_anonymous:
            raise Refused(
                401, "Authentication required: use your username and a personal access token.", challenge=True
            )
        raise Refused(404, "Repository not found.")
    except PermissionDenied:
        if principal.is_anonymous:
            raise Refused(401, "Sign in to push: use your username and a personal access token.", challenge=True)
        if principal.read_token_repository_id is not None:
            raise Refused(403, "A read token cannot push.")
        if principal.token is not None and not principal.token.has_scope("write:repo"):
            raise Refused(403, "This token cannot push: it lacks the write:repo scope.")
        raise Refused(403, f"You have read-only access to {owner}/{name}; pushing needs write access.")
    return principal, repo


def _environment(request: HttpRequest, principal: Principal) -> dict[str, str]:
    """What this request adds to git's environment: the protocol version asked for and the pusher's name."""
    env = {}
    protocol = request.META.get("HTTP_GIT_PROTOCOL", "")
    if protocol:
        # The same check as for SSH clients' GIT_PROTOCOL; here a bad header is refused, not dropped.
        if transport.safe_git_protocol(protocol) is None:
            raise Refused(400, "Malformed Git-Protocol header.")
        env["GIT_PROTOCOL"] = protocol
    if principal.user is not None:
        # The identity in the repository's reflog, as git http-backend would set it.
        env["GIT_COMMITTER_NAME"] = principal.user.username
        env["GIT_COMMITTER_EMAIL"] = f"{principal.user.username}@portal"
    return env


def _body(request: HttpRequest) -> BinaryIO:
    """The request body as a stream, decompressed when git sent it gzipped."""
    # Servers that decode chunked bodies (gunicorn) say so; Django's own stream stops at Content-Length.
    raw = request.META["wsgi.input"] if request.META.get("wsgi.input_terminated") else request
    encoding = request.META.get("HTTP_CONTENT_ENCODING", "").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if encoding not in ("", "identity"):
        raise Refused(415, f"Unsupported Content-Encoding {encoding[:40]!r}: send gzip or nothing.")
    return raw


def _pkt_line(text: str) -> bytes:
    data = text.encode()
    return f"{len(data) + 4:04x}".encode() + data


def _stream(content_type: str, chunks: Iterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type=content_type)
    for header, value in NO_CACHE.items():
        response[header] = value
    return response


@csrf_exempt
def info_refs(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    """The ref advertisement that starts every clone, fetch and push."""
    service = request.GET.get("service", "")
    try:
        if request.method != "GET":
            raise Refused(405, "info/refs only answers GET.")
        if service not in HTTP_SERVICES:
            raise Refused(403, "Only git's smart HTTP protocol is supported (info/refs?service=git-upload-pack).")
        principal, repo = get_repo_for_git(request, owner, name, service)
        env = git.base_environment() | _environment(request, principal)
    except Refused as refused:
        return refused.response()
    output = git.stream_service(service, repo.path, env=env, advertise=True)
    # Protocol v2 starts with its capabilities; v0 and receive-pack start with the service line.
    if not (service == "git-upload-pack" and "version=2" in env.get("GIT_PROTOCOL", "").split(":")):
        output = chain([_pkt_line(f"# service={service}\n") + b"0000"], output)
    return _stream(f"application/x-{service}-advertisement", output)


@csrf_exempt
def service_rpc(request: HttpRequest, owner: str, name: str, service: str) -> HttpResponse:
    """One round of upload-pack (fetch) or receive-pack (push); the service comes from the URL path."""
    try:
        if request.method != "POST":
            raise Refused(405, f"{service} only answers POST.")
        principal, repo = get_repo_for_git(request, owner, name, service)
        if request.content_type != f"application/x-{service}-request":
            raise Refused(415, f"Expected Content-Type application/x-{service}-request.")
        body = _body(request)
        extra = _environment(request, principal)
    except Refused as refused:
        return refused.response()
    # Checked and refused above, so that only a push git will really run gets a push session.
    env = transport.git_environment(principal, repo, protocol="http", service=service) | extra
    output = _ending_push(git.stream_service(service, repo.path, env=env, body=body), env)
    try:
        output = _started(output)
    except git.ServiceFailed as exc:
        # git refused the request before answering (a malformed request): its message, with a status that says so.
        return Refused(400, str(exc)).response()
    return _stream(f"application/x-{service}-result", output)


def _started(output: Iterator[bytes]) -> Iterator[bytes]:
    """git's output with its first chunk already read, so that a request git refuses outright raises
    git.ServiceFailed while another status than 200 can still be answered."""
    first = next(output, None)
    return chain([first], output) if first is not None else iter(())


def _ending_push(chunks: Iterator[bytes], env: dict[str, str]) -> Iterator[bytes]:
    """git's output; once git has exited (or the client went away and it was stopped), its push session is deleted."""
    try:
        # Closing this generator closes stream_service first, which stops git if needed and waits for it.
        yield from chunks
    finally:
        transport.end_push(env)
