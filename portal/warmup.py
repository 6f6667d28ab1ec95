"""What a web process loads when it starts rather than on its first requests.

Django imports the URLconf (and with it every view module), compiles each template and builds the reverse lookup
tables on first use, and each app has caches of its own that fill on first use (repos: Pygments' lexers, Markdown):
the first pages a new process served paid for all of it (the first repository page after a start took 0.1 to 1 s
more than the next). warm_up() does that work once per process, before it takes requests; an app takes part by
giving its AppConfig a warm_up() method."""

import functools
import io
import logging
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from django.apps import apps
from django.conf import settings
from django.core.cache import cache
from django.db import connections
from django.template import engines
from django.template.utils import get_app_template_dirs
from django.urls import get_resolver

from portal.templatetags import urls

logger = logging.getLogger(__name__)


def warm_up(application: Callable | None = None) -> None:
    """Load the URLconf, compile the project's templates, run each app's warm_up(), then pass a visitor's request
    of the site's root through application (the WSGI handler): what fails is logged and left to load on first
    use, as it would have been. The database connections opened on the way are closed again."""
    steps = [_urls, _templates, *_apps("warm_up")]
    if application is not None:
        steps.append(functools.partial(_first_request, application))
    _run(steps)
    connections.close_all()


def warm_up_thread(application: Callable) -> None:
    """Load what a thread's own first requests would: run in the worker thread that takes a web process's first
    requests (portal.gunicorn_hooks), before it takes them. Each thread has its own database connection, its own
    cache client and, in repos, its own handles on repositories: each app's warm_up_thread() runs, then a
    visitor's GET of / and of each page the apps' warm_up_pages() name, through application (the first run of
    a page's code, even with every template compiled, took several times what later runs take). The connections
    stay open for the requests that follow."""
    _run([_cache_client, *_apps("warm_up_thread"), functools.partial(_first_request, application)])
    for pages_of in _apps("warm_up_pages"):
        try:
            pages = pages_of()
        except Exception:
            logger.exception("warming up %s failed; its pages load on first use instead", pages_of.__qualname__)
            continue
        _run([functools.partial(_first_request, application, page) for page in pages])


def _cache_client() -> None:
    # Django makes each thread a cache client of its own, which connects on its first command.
    cache.get("portal:warm-up")


def _apps(method: str) -> list[Callable[[], None]]:
    return [getattr(app, method) for app in apps.get_app_configs() if callable(getattr(app, method, None))]


def _run(steps: list[Callable[[], None]]) -> None:
    """Each step; what fails is logged and left to load on first use, as it would have been."""
    for step in steps:
        try:
            step()
        except Exception:
            name = getattr(step, "__qualname__", getattr(getattr(step, "func", None), "__qualname__", step))
            logger.exception("warming up %s failed; it loads on first use instead", name)


def _first_request(application: Callable, path: str = "/") -> None:
    """GET path (/ unless given) as a visitor, through every middleware: the first request of a process loads the
    session and message backends, the context processors and the rest of what only a request touches."""
    base = urlsplit(settings.PORTAL_BASE_URL)
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": base.hostname or "localhost",
        "SERVER_PORT": str(base.port or (443 if base.scheme == "https" else 80)),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": base.netloc,
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        "wsgi.url_scheme": base.scheme or "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if header and base.scheme == "https":
        environ[header[0]] = header[1]
    statuses = []
    body = application(environ, lambda status, headers, exc_info=None: statuses.append(status))
    try:
        for _chunk in body:
            pass
    finally:
        if hasattr(body, "close"):
            body.close()
    if not statuses or not statuses[0].startswith(("200", "30")):
        logger.info("warming up: GET %s answered %s", path, statuses[0] if statuses else "nothing")


def _urls() -> None:
    resolver = get_resolver()
    # Imports every view module, then builds the tables that reverse() and {% url %} read.
    _ = resolver.url_patterns, resolver.reverse_dict, resolver.namespace_dict, resolver.app_dict


def _templates() -> None:
    """Compile every template of the project and of its own apps (not those of installed packages) into the
    cached loader, so that no page compiles one, and the links their {% quick_url %}s make."""
    base = Path(settings.BASE_DIR).resolve()
    compiled = []
    for engine in engines.all():
        folders = [Path(folder) for folder in engine.engine.dirs]
        folders += [Path(folder) for folder in get_app_template_dirs("templates")]
        for folder in folders:
            folder = folder.resolve()
            if not folder.is_relative_to(base) or ".venv" in folder.parts or "site-packages" in folder.parts:
                continue
            for template in sorted(folder.rglob("*.html")):
                name = template.relative_to(folder).as_posix()
                try:
                    compiled.append(engine.get_template(name).template)
                except Exception:
                    logger.debug("template %s does not compile on its own", name, exc_info=True)
    urls.warm_up(compiled)
