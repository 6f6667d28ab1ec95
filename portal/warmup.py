"""What a web process loads when it starts rather than on its first requests.

Django imports the URLconf (and with it every view module), compiles each template and builds the reverse lookup
tables on first use, and each app has caches of its own that fill on first use (repos: Pygments' lexers, Markdown):
the first pages a new process served paid for all of it (the first repository page after a start took 0.1 to 1 s
more than the next). warm_up() does that work once per process, before it takes requests; an app takes part by
giving its AppConfig a warm_up() method."""

import logging
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.template import engines
from django.template.utils import get_app_template_dirs
from django.urls import get_resolver

logger = logging.getLogger(__name__)


def warm_up() -> None:
    """Load the URLconf, compile the project's templates and run each app's warm_up(); what fails is logged and
    left to load on first use, as it would have been."""
    steps = [_urls, _templates] + [
        app.warm_up for app in apps.get_app_configs() if callable(getattr(app, "warm_up", None))
    ]
    for step in steps:
        try:
            step()
        except Exception:
            logger.exception("warming up %s failed; it loads on first use instead", getattr(step, "__qualname__", step))


def _urls() -> None:
    resolver = get_resolver()
    # Imports every view module, then builds the tables that reverse() and {% url %} read.
    _ = resolver.url_patterns, resolver.reverse_dict, resolver.namespace_dict, resolver.app_dict


def _templates() -> None:
    """Compile every template of the project and of its own apps (not those of installed packages) into the
    cached loader, so that no page compiles one."""
    base = Path(settings.BASE_DIR).resolve()
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
                    engine.get_template(name)
                except Exception:
                    logger.debug("template %s does not compile on its own", name, exc_info=True)
