"""The code pages a visitor without a session sees, kept whole and sent before Django's handler even starts.

Such a page is the same for every visitor (no name, no form, no message), so, like cgit's cache, a repeat view
skips the view and its templates, and the session, authentication, messages and CSRF middlewares, none of which
a visitor without a session uses. CachedPages, the first middleware, keeps for each URL the page and how it was
found: the repository and site settings it showed, the git lookups that named its commits (resolving a branch,
say) with a digest of what each answered, and the headers every middleware gave the response. A web process's
WSGI front (AnswerFirst; CachedPages itself for any other handler) sends a later visitor's page for that URL
from the cache once the access door still lets a visitor read the repository, the repository and site still
show the same, and every lookup still answers the same: the objects named by shas never change. Only the
header's live part (what each environment runs, which changes without a push) is rendered again for each view.

Anything else (a session, a moved branch, a repository made private or renamed, a cache miss) goes through the
middlewares to the view, as any request does. Meanwhile the writes to the shared cache that a page makes are
held until its response has been sent (repos.code.defer_writes). Each page kept is then announced on a Valkey
channel, and a web process asks the shared cache only for the addresses it heard of (KeptUrls), so that a first
view does not wait for a miss there."""

import hashlib
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIRequest
from django.core.signals import request_finished, request_started
from django.http import Http404, HttpRequest, HttpResponse

from portal.models import SiteSettings
from repos import code, git
from repos.access import get_repo_for_visitor
from repos.models import Repository

logger = logging.getLogger(__name__)

# The git lookups that tell which commits a URL shows. What they answer changes with every push; the objects
# named by shas never change, so a page is still right while each lookup it made answers the same.
LOOKUPS: dict[str, Callable] = {
    "resolve": git.resolve,
    "resolve_commit": git.resolve_commit,
    "is_empty": git.is_empty,
    "ref_names": git.ref_names,
}
# A whole kept page is bytes; the header kept by {% code_nav %} is text. The marks around the header's live part:
Page = TypeVar("Page", str, bytes)
LIVE_START, LIVE_END = "<!--live-->", "<!--/live-->"
# Set in a request's environ by AnswerFirst when the cache had nothing for it.
ASKED = "portal.page_cache.asked"
# Headers that belong to one response, not to the page.
NOT_KEPT = frozenset(("content-length", "date", "set-cookie"))


@dataclass(frozen=True)
class Found:
    """A URL's page, and how it was found."""

    owner: str
    name: str
    state: tuple
    lookups: tuple[tuple[str, tuple, bytes], ...]
    headers: tuple[tuple[str, str], ...]
    # The page, cut where the header's live part goes (between the two parts), or whole when it has none.
    parts: tuple[bytes, ...]

    @property
    def size(self) -> int:
        return sum(map(len, self.parts))


def is_visitor(request: HttpRequest) -> bool:
    """A request that can only be a visitor's: no session or message cookie and no credentials of its own."""
    cookies = request.COOKIES
    return (
        settings.SESSION_COOKIE_NAME not in cookies
        and "messages" not in cookies
        and "HTTP_AUTHORIZATION" not in request.META
    )


def state(repo: Repository) -> tuple:
    """What a code page shows of the repository and the site, besides what its URL and commits name."""
    return (
        repo.pk,
        repo.owner.username,
        repo.name,
        repo.description,
        repo.visibility,
        repo.default_branch,
        SiteSettings.signup_is_open(),
    )


def keep_for_visitors(request: HttpRequest, repo: Repository) -> None:
    """The page about to be rendered for this request is the same for every visitor: CachedPages keeps it."""
    if hasattr(request, "page_lookups") and not request.user.is_authenticated:
        request.page_shows = (repo.owner.username, repo.name, state(repo))


def lookup(request: HttpRequest, repo: Repository, name: str, *args):
    """LOOKUPS[name](repo.path, *args), noted for CachedPages when it may keep the page."""
    noted = getattr(request, "page_lookups", None)
    try:
        answer = LOOKUPS[name](repo.path, *args)
    except git.RefNotFound:
        if noted is not None:
            noted.append((name, args, _digest(git.RefNotFound)))
        raise
    if noted is not None:
        noted.append((name, args, _digest(answer)))
    return answer


def _digest(answer: object) -> bytes:
    return hashlib.blake2b(repr(answer).encode("utf-8", "surrogateescape"), digest_size=16).digest()


def _answers_the_same(repo: Repository, name: str, args: tuple, digest: bytes) -> bool:
    try:
        answer = LOOKUPS[name](repo.path, *args)
    except git.RefNotFound:
        answer = git.RefNotFound
    return _digest(answer) == digest


def live_header(html: str, repo: Repository) -> str:
    """The header {% code_nav %} keeps, with its live part (what each environment runs) rendered now."""
    parts = _cut(html)
    return parts[0] + live_part(repo) + parts[1] if len(parts) == 2 else html


# The header's live part: what the apps above repos show there (releases: what each environment runs), each a
# function of the repository that returns HTML, registered when the app is ready.
_live_parts: list[Callable[[Repository], str]] = []


def register_live_part(part: Callable[[Repository], str]) -> None:
    if part not in _live_parts:
        _live_parts.append(part)


def live_part(repo: Repository) -> str:
    """The header's live part, rendered now: rendered again for every view, even of a page kept whole."""
    return "".join(part(repo) for part in _live_parts)


def _cut(page: Page) -> tuple[Page, ...]:
    """A page cut where the header's live part goes: the part before it and the part after, or the page whole
    when it has none."""
    start_mark, end_mark = (
        (LIVE_START.encode(), LIVE_END.encode()) if isinstance(page, bytes) else (LIVE_START, LIVE_END)
    )
    start = page.find(start_mark)
    end = page.find(end_mark, start)
    if start < 0 or end < 0:
        return (page,)
    return page[: start + len(start_mark)], page[end:]


# The addresses of the pages views keep (home, tree, blob, commits, commit, compare, blame): other requests are
# not worth a look in the cache.
_PAGE_PATH = re.compile(r"/[^/]+/[^/]+(?:/(?:tree|blob|commits|commit|compare|blame)(?:/.*)?)?")


# Entries kept by a portal whose Found had other fields are not read back as this one's.
_FOUND_SHAPE = tuple(field.name for field in fields(Found))


def _url_key(request: HttpRequest) -> str:
    meta = request.META
    where = (meta.get("SCRIPT_NAME", ""), meta["PATH_INFO"], meta.get("QUERY_STRING", ""))
    return code.cache_key("found", (_FOUND_SHAPE, *where))


def _may_answer(request: HttpRequest) -> bool:
    """Whether the cache may answer this request: a visitor's plain GET of a code page's address, which the
    middlewares would let through (an allowed host; no redirect to HTTPS due)."""
    if request.method != "GET" or "HTTP_IF_NONE_MATCH" in request.META or not is_visitor(request):
        return False
    if not _PAGE_PATH.fullmatch(request.path_info):
        return False
    if settings.SECURE_SSL_REDIRECT and not request.is_secure():
        return False
    try:
        request.get_host()
    except DisallowedHost:
        return False
    return True


def answer(request: HttpRequest, *, own_request: bool = False) -> tuple[list[tuple[str, str]], list[bytes]] | None:
    """The headers and content (in parts, to be sent in turn) of the page kept for this URL, if the request may
    have it and it is still right; None otherwise.

    own_request: the caller is no Django handler, so the database connections are looked after here as Django's
    handler does for a request, once the cache has an entry to check."""
    if not _may_answer(request):
        return None
    url_key = _url_key(request)
    started = False
    try:
        # A URL's entry changes with every push: one this process kept may be older than the shared cache's. The
        # shared cache is asked only for a URL some process kept a page for, as far as this one heard.
        sources = (code.local_cache.get, cache.get) if kept_urls.may_have(url_key) else (code.local_cache.get,)
        for get in sources:
            found = get(url_key)
            if not isinstance(found, Found):
                continue
            if own_request and not started:
                request_started.send(sender=AnswerFirst, environ=request.META)
                started = True
            if (page := _answer(found)) is not None:
                code.local_cache.put(url_key, found, found.size, replace=True)
                return page
    finally:
        if started:
            request_finished.send(sender=AnswerFirst)
    return None


# Every page kept in the shared cache, by any process, is announced on this channel.
KEPT_CHANNEL = "portal:page-cache:kept"


class KeptUrls:
    """The URL keys of the pages kept in the shared cache, as this process heard of them: a web process's front
    asks the shared cache for those alone, so that a first view does not wait for a miss there (an eighth of its
    time). Until the process listens, and whenever it lost the channel, it cannot tell: may_have() then says yes,
    and the front asks as it would without it. A key it no longer holds (past max_keys) costs a page rendered
    again, which keeps it again."""

    def __init__(self, max_keys: int = 100_000):
        self.max_keys = max_keys
        self._keys: set[str] = set()
        self._order: deque[str] = deque()
        self._lock = threading.Lock()
        # The process whose thread listens: a forked child inherits the set, not the thread.
        self._listener: int | None = None
        self._listening = False
        self._closed = False

    @property
    def listening(self) -> bool:
        return self._listening and self._listener == os.getpid()

    def may_have(self, key: str) -> bool:
        return not self.listening or key in self._keys

    def add(self, key: str) -> None:
        with self._lock:
            if key in self._keys:
                return
            if len(self._order) >= self.max_keys:
                self._keys.discard(self._order.popleft())
            self._keys.add(key)
            self._order.append(key)

    def listen(self) -> None:
        """Hear the pages kept, in a thread of this process (started once), when the shared cache is Valkey's."""
        client_for = getattr(cache, "client", None)
        if client_for is None or self._listener == os.getpid():
            return
        self._listener = os.getpid()
        threading.Thread(target=self._listen, args=(client_for,), name="kept-pages", daemon=True).start()

    def close(self) -> None:
        """Stop listening (within a second): it cannot tell any more."""
        self._closed = True
        self._listening = False

    def _listen(self, client_for: Callable) -> None:
        prefix = cache.make_key("")
        while not self._closed:
            try:
                client = client_for(write=False)
                with client.pubsub(ignore_subscribe_messages=True) as channel:
                    channel.subscribe(KEPT_CHANNEL)
                    # Once subscribed, so that none kept meanwhile is missed: the pages kept before.
                    for raw in client.scan_iter(match=f"{cache.make_key('found:')}*", count=1000):
                        self.add(raw.decode()[len(prefix) :])
                    self._listening = not self._closed
                    while not self._closed:
                        message = channel.get_message(timeout=1.0)
                        if message is not None:
                            self.add(message["data"].decode())
            except Exception as error:
                if self._listening and not self._closed:
                    logger.warning("page cache: lost the channel of kept pages (%s); asking for every page", error)
                self._listening = False
                time.sleep(1)
        self._listening = False


kept_urls = KeptUrls()
_kept_now = threading.local()


def _announce_kept() -> None:
    """Announce the pages this thread kept, once their writes are sent."""
    keys, _kept_now.keys = getattr(_kept_now, "keys", None), None
    # Another cache than Valkey's has no channel, and no web process listens then.
    if keys and hasattr(cache, "publish"):
        cache.publish(KEPT_CHANNEL, keys)


def _answer(found: Found) -> tuple[list[tuple[str, str]], list[bytes]] | None:
    try:
        repo = get_repo_for_visitor(found.owner, found.name)
    except Http404:
        return None
    if state(repo) != found.state:
        return None
    if not all(_answers_the_same(repo, name, args, digest) for name, args, digest in found.lookups):
        return None
    # The live part is put between the kept parts as they are sent: the page itself is not copied.
    content = [found.parts[0], live_part(repo).encode(), found.parts[1]] if len(found.parts) == 2 else [*found.parts]
    return [*found.headers, ("Content-Length", str(sum(map(len, content))))], content


class CachedPages:
    """The first middleware: answer a visitor's repeat view from the cache, and keep the pages views mark for
    it with the headers every middleware gave them. A GET's writes to the shared cache wait until its response
    has been sent (request_finished)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method != "GET":
            return self.get_response(request)
        code.defer_writes()
        # Unless a web process's front has just asked.
        if ASKED not in request.META and (page := answer(request)) is not None:
            headers, content = page
            return HttpResponse(b"".join(content), headers=dict(headers))
        if _may_answer(request):
            request.page_lookups = []
        response = self.get_response(request)
        shows = getattr(request, "page_shows", None)
        if shows is not None and response.status_code == 200 and not response.cookies and not response.streaming:
            owner, name, shown = shows
            lookups = tuple(request.page_lookups)
            headers = tuple((k, v) for k, v in response.items() if k.lower() not in NOT_KEPT)
            found = Found(owner, name, shown, lookups, headers, _cut(response.content))
            key = _url_key(request)
            code.cache_set(key, found, replace=True, size=found.size)
            kept_urls.add(key)
            _kept_now.keys = [*(getattr(_kept_now, "keys", None) or ()), key]
        return response


class AnswerFirst:
    """WSGI: what answer() has is sent before Django's handler and middlewares even start (a web process's
    application, portal.wsgi); everything else goes to the application."""

    def __init__(self, application):
        self.application = application

    def start(self) -> None:
        """What the front needs running in a web process: hearing which pages are kept (called by portal.wsgi)."""
        kept_urls.listen()

    def __call__(self, environ: dict, start_response):
        if environ.get("REQUEST_METHOD") == "GET":
            try:
                page = answer(WSGIRequest(environ), own_request=True)
            except Exception:
                # Whatever went wrong (a repository gone from the disk, the database away) goes the long way,
                # where Django answers it as it answers any failure.
                logger.exception("answering %s from the cache failed", environ.get("PATH_INFO"))
                page = None
            if page is not None:
                headers, content = page
                start_response("200 OK", headers)
                return content
            environ[ASKED] = True
        return self.application(environ, start_response)


def _write_deferred(sender, **kwargs) -> None:
    code.write_deferred()
    _announce_kept()


request_finished.connect(_write_deferred, dispatch_uid="repos.page_cache.write_deferred")
