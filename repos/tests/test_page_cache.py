"""A visitor's code pages, kept whole and answered ahead of the middlewares (repos.page_cache)."""

import io
import time

import pytest
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client, RequestFactory

from repos import browse_views, code, page_cache
from repos import services as repo_services
from repos.models import Visibility
from repos.page_cache import AnswerFirst, KeptUrls
from repos.tests.worktree import commit_all, run

PAGES = ("/alice/site", "/alice/site/tree/main/src", "/alice/site/blob/main/src/app.c", "/alice/site/commits/main")


@pytest.fixture(autouse=True)
def empty_caches():
    """Nothing kept from another test (whose repository may have had the same id, names and commits)."""
    cache.clear()
    code.local_cache.clear()


@pytest.fixture
def site(alice, work):
    repo = repo_services.create_repository(actor=alice, owner=alice, name="site", visibility=Visibility.PUBLIC)
    (work / "src").mkdir()
    (work / "src" / "app.c").write_text("int first_version;\n")
    commit_all(work, "Start")
    run(work, "tag", "v1")
    run(work, "push", "-q", str(repo.path), "main", "v1")
    return repo


@pytest.fixture
def renders(monkeypatch):
    """The templates each code view renders, in order: the pages that did not come from the cache."""
    rendered = []
    real = browse_views.render

    def render(request, template, context=None):
        rendered.append(template)
        return real(request, template, context)

    monkeypatch.setattr(browse_views, "render", render)
    return rendered


def headers(response) -> dict:
    return {name: value for name, value in response.items() if name != "Date"}


def test_a_visitors_repeat_view_is_the_same_page_without_the_view(site, renders):
    for url in PAGES:
        first = Client().get(url)
        assert first.status_code == 200, url
        again = Client().get(url)
        assert again.content == first.content, url
        # The headers the middlewares gave the first (security policy, framing, ETag and caching), kept.
        assert headers(again) == headers(first), url
    assert len(renders) == len(PAGES)


def test_a_repeat_view_asks_the_database_only_for_the_repository_and_its_environments(
    site, renders, django_assert_num_queries
):
    Client().get("/alice/site/tree/main/src")
    # The access door's lookup, and the header's environment strip: no session, user or message is read.
    with django_assert_num_queries(2):
        assert Client().get("/alice/site/tree/main/src").status_code == 200
    assert renders == ["repos/tree.html"]


def test_a_page_follows_a_push_and_a_ref_that_now_names_something_else(site, work, renders):
    assert "first_version" in Client().get("/alice/site/blob/main/src/app.c").content.decode()
    assert "first_version" in Client().get("/alice/site/blob/v1/src/app.c").content.decode()
    (work / "src" / "app.c").write_text("int second_version;\n")
    commit_all(work, "Change")
    run(work, "push", "-q", str(site.path), "main")
    assert "second_version" in Client().get("/alice/site/blob/main/src/app.c").content.decode()
    # The tag has not moved, but a branch named v1 now comes first for /v1/: the same URL shows the branch.
    assert "first_version" in Client().get("/alice/site/blob/v1/src/app.c").content.decode()
    run(work, "push", "-q", str(site.path), "main:refs/heads/v1")
    assert "second_version" in Client().get("/alice/site/blob/v1/src/app.c").content.decode()
    # The second view of /v1/ before the branch was the only one kept.
    assert len(renders) == 4


def test_a_kept_page_is_not_shown_to_a_reader_with_a_session_nor_once_the_repository_changes(site, alice, renders):
    for url in PAGES:
        Client().get(url)
    signed_in = Client()
    signed_in.force_login(alice)
    assert 'class="me">alice<' in signed_in.get("/alice/site/tree/main/src").content.decode()
    repo_services.update_repository(site, actor=alice, description="Now described")
    assert "Now described" in Client().get("/alice/site").content.decode()
    repo_services.update_repository(site, actor=alice, visibility=Visibility.PRIVATE)
    for url in PAGES:
        assert Client().get(url).status_code == 404, url


def test_a_visitor_with_a_message_waiting_gets_the_page_with_it(site, alice):
    Client().get("/alice/site")
    client = Client()
    client.force_login(alice)
    # Signing out leaves a message for the next page, which the visitor's browser carries in a cookie.
    client.post("/accounts/logout/")
    assert "messages" in client.cookies
    assert "signed out" in client.get("/alice/site").content.decode()


@pytest.fixture
def keep_connections():
    """The test's database connection stays open across requests, as Django's test client keeps it."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


class Counted:
    """Django's own WSGI handler, counting the requests that reach it."""

    def __init__(self):
        # get_wsgi_application() would set Django up again, and its logging with it.
        self.handler = WSGIHandler()
        self.calls = 0

    def __call__(self, environ, start_response):
        self.calls += 1
        return self.handler(environ, start_response)


def wsgi_get(application, path: str, host: str = "testserver", scheme: str = "http") -> tuple[str, dict, bytes]:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": host,
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        "wsgi.url_scheme": scheme,
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    started = []
    body = application(environ, lambda status, headers, exc_info=None: started.append((status, headers)))
    try:
        content = b"".join(body)
    finally:
        if hasattr(body, "close"):
            body.close()
    status, headers = started[0]
    return status, {name: value for name, value in headers if name != "Date"}, content


def test_a_web_process_sends_a_kept_page_before_djangos_handler(site, renders, keep_connections):
    django_handler = Counted()
    application = AnswerFirst(django_handler)
    url = "/alice/site/tree/main/src"
    status, first_headers, first = wsgi_get(application, url)
    assert (status, django_handler.calls) == ("200 OK", 1)
    status, headers, again = wsgi_get(application, url)
    assert (status, django_handler.calls) == ("200 OK", 1)
    assert again == first
    assert headers == first_headers
    assert headers["X-Frame-Options"] == "DENY" and "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert renders == ["repos/tree.html"]


def test_a_kept_page_is_not_sent_to_a_host_not_allowed_nor_over_http_when_https_is_required(
    site, settings, keep_connections
):
    django_handler = Counted()
    application = AnswerFirst(django_handler)
    url = "/alice/site/tree/main/src"
    wsgi_get(application, url)
    status, _headers, _body = wsgi_get(application, url, host="evil.example")
    assert status.startswith("400") and django_handler.calls == 2
    # Django's middlewares read this setting when its handler is made.
    settings.SECURE_SSL_REDIRECT = True
    django_handler = Counted()
    status, headers, _body = wsgi_get(AnswerFirst(django_handler), url)
    assert status.startswith("301") and headers["Location"] == f"https://testserver{url}"
    assert django_handler.calls == 1


def test_a_kept_page_whose_repository_left_the_disk_goes_the_long_way(site, keep_connections, caplog):
    django_handler = Counted()
    application = AnswerFirst(django_handler)
    url = "/alice/site/tree/main/src"
    wsgi_get(application, url)
    site.path.rename(site.path.with_name("elsewhere.git"))
    try:
        status, _headers, _body = wsgi_get(application, url)
    finally:
        site.path.with_name("elsewhere.git").rename(site.path)
    # Django answered it, as it answers a repository it cannot open.
    assert django_handler.calls == 2
    assert status.startswith("500")
    assert any(record.name == "repos.page_cache" for record in caplog.records)


def wait_until(condition, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def url_key(path: str) -> str:
    return page_cache._url_key(RequestFactory().get(path))


@pytest.fixture
def kept():
    """What one more web process would hear of the pages kept; it stops listening at the end of the test."""
    kept = KeptUrls()
    yield kept
    kept.close()


def test_a_process_hears_the_pages_kept_before_and_after_it_listens(site, kept):
    before, after = "/alice/site/tree/main/src", "/alice/site/commits/main"
    Client().get(before)
    # Until it listens, it cannot tell: every page may be kept.
    assert kept.may_have(url_key("/alice/site/blame/main/src/app.c"))
    kept.listen()
    wait_until(lambda: kept.listening)
    assert kept.may_have(url_key(before))
    assert not kept.may_have(url_key(after))
    # Another process keeps one: it announces it once its writes are sent.
    Client().get(after)
    wait_until(lambda: kept.may_have(url_key(after)))
    assert not kept.may_have(url_key("/alice/site/blame/main/src/app.c"))


def test_a_web_process_asks_the_shared_cache_only_for_pages_it_heard_were_kept(
    site, kept, monkeypatch, keep_connections
):
    path = "/alice/site/tree/main/src"
    wsgi_get(AnswerFirst(Counted()), path)
    code.local_cache.clear()
    request = RequestFactory().get(path)
    # Listening, and not told of this page: the shared cache is not asked, and the page is made again.
    kept.listen()
    monkeypatch.setattr(page_cache, "kept_urls", kept)
    wait_until(lambda: kept.listening)
    kept._keys.clear()
    assert page_cache.answer(request, own_request=True) is None
    kept.add(url_key(path))
    assert page_cache.answer(request, own_request=True) is not None


def test_the_urls_heard_are_bounded_the_oldest_forgotten_first():
    kept = KeptUrls(max_keys=2)
    for key in ("a", "b", "c"):
        kept.add(key)
    assert kept._keys == {"b", "c"}
