from datetime import datetime

from django import template
from django.utils.safestring import SafeString

from repos import code

register = template.Library()


@register.filter
def ago(when: datetime) -> SafeString:
    """A <time> that code.js shows as "3 days ago"; the page itself carries the date, so it can be cached."""
    return code.safe(code.ago(when))
