from datetime import datetime

from django import template
from django.utils.safestring import SafeString, mark_safe

from repos import code, page_cache
from repos.models import clone_url_label

register = template.Library()


@register.simple_tag(takes_context=True)
def code_nav(context: template.Context) -> SafeString:
    """repos/_code_nav.html, the repository's header and tabs. A visitor's is the same on every page of a tab (no
    counter, no settings link), so a process renders it once per repository state and tab, and only its live part
    (what each environment runs) again for each page; a signed-in reader's is rendered each time."""
    nav = context.template.engine.get_template("repos/_code_nav.html")
    repo, user = context["repo"], context.get("user")
    if (user is not None and user.is_authenticated) or context.get("is_admin"):
        return nav.render(context)
    key = code.cache_key("nav", (repo.pk, repo.owner.username, repo.name, repo.visibility, context.get("tab")))
    html = code.local_cache.get(key)
    if not isinstance(html, str):
        html = nav.render(context)
        code.local_cache.put(key, html, len(html))
        return html
    return mark_safe(page_cache.live_header(html, repo))  # noqa: S308 (our template's own rendering)


@register.simple_tag
def live_header(repo) -> SafeString:
    """The header's live part (repos.page_cache.live_part), between the marks a kept page is cut at."""
    return mark_safe(page_cache.live_part(repo))  # noqa: S308 (HTML the apps' own parts render)


@register.filter
def ago(when: datetime) -> SafeString:
    """A <time> that code.js shows as "3 days ago"; the page itself carries the date, so it can be cached."""
    return code.safe(code.ago(when))


@register.filter
def clone_label(url: str) -> str:
    """SSH, HTTPS or HTTP: how a clone URL is reached, read from the URL itself."""
    return clone_url_label(url)
