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


def test_a_web_workers_first_thread_is_warmed_before_it_takes_requests(transactional_db, alice, caplog):
    """gunicorn's hook runs the thread warm-up in the worker's pool, whose idle thread then takes the first
    request: it holds a handle on the repository pushed to last and has rendered that repository's code pages
    once (named by sha: the branch's pages are left to readers). Its database connection stays open as well
    under serve; tests close every connection at the end of a request (CONN_MAX_AGE 0)."""
    import concurrent.futures
    import types

    from django.apps import apps

    from portal import gunicorn_hooks
    from repos import code, git
    from repos import services as repo_services
    from repos.git import _base
    from repos.models import Visibility
    from repos.page_cache import AnswerFirst

    repo = repo_services.create_repository(actor=alice, owner=alice, name="site", visibility=Visibility.PUBLIC)
    files = {"README.md": b"# Site\n", "src/app.c": b"int main;\n"}
    sha = git.commit_files(repo.path, "main", files, "Start", name="Alice", email="alice@example.com")
    code.local_cache.clear()
    caplog.set_level(logging.INFO, logger="portal.warmup")
    # One thread, so that the question below surely goes to the thread the hook warmed.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        gunicorn_hooks.post_worker_init(types.SimpleNamespace(tpool=pool, wsgi=AnswerFirst(WSGIHandler())))
        handles = pool.submit(lambda: list(getattr(_base._handles, "repos", {}))).result()
    finally:
        pool.shutdown()
    assert str(repo.path) in handles
    # Every page answered 200 (one that does not is logged).
    assert [record.getMessage() for record in caplog.records if record.name == "portal.warmup"] == []
    pages = [f"/alice/site/tree/{sha}", f"/alice/site/commits/{sha}", f"/alice/site/tree/{sha}/src"]
    assert apps.get_app_config("repos").warm_up_pages() == [*pages, f"/alice/site/blob/{sha}/README.md"]
