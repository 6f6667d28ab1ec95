"""A web process loads at its start what its first requests would otherwise load."""

import logging

from django.core.handlers.wsgi import WSGIHandler
from django.template import engines
from django.template.loaders.cached import Loader as CachedLoader

from portal.warmup import warm_up


def _compiled_templates() -> set[str]:
    loaders = engines["django"].engine.template_loaders
    return {name for loader in loaders if isinstance(loader, CachedLoader) for name in loader.get_template_cache}


def test_warming_up_compiles_the_templates_and_serves_a_first_request_without_a_failure(transactional_db, caplog):
    for loader in engines["django"].engine.template_loaders:
        if isinstance(loader, CachedLoader):
            loader.reset()
    caplog.set_level(logging.INFO, logger="portal.warmup")
    warm_up(WSGIHandler())
    # Every step ran (a failing one is logged and skipped), and GET / answered 200.
    assert [record.getMessage() for record in caplog.records if record.name == "portal.warmup"] == []
    compiled = _compiled_templates()
    assert {"base.html", "repos/tree.html", "repos/commits.html", "releases/_environment_strip.html"} <= compiled


def test_warming_up_makes_the_links_of_the_repository_header(transactional_db):
    from portal.templatetags import urls

    urls._templates.clear()
    warm_up()
    made = {name for _prefix, name, _count in urls._templates}
    # The header's and tabs' links (repos/_repo_head.html, repos/_code_nav.html) and the site's (base.html).
    assert {"repos:detail", "browse:commits", "browse:tags", "deployments:environments", "account_login"} <= made
