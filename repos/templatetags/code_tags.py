from datetime import datetime

from django import template
from django.utils.safestring import SafeString

from repos import code
from repos.models import clone_url_label

register = template.Library()


@register.filter
def ago(when: datetime) -> SafeString:
    """A <time> that code.js shows as "3 days ago"; the page itself carries the date, so it can be cached."""
    return code.safe(code.ago(when))


@register.filter
def clone_label(url: str) -> str:
    """SSH, HTTPS or HTTP: how a clone URL is reached, read from the URL itself."""
    return clone_url_label(url)
