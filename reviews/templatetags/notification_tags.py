from django import template
from django.contrib.auth.models import AnonymousUser

from portal.models import User
from reviews.notifications import unread_count

register = template.Library()


@register.simple_tag
def unread_notification_count(user: User | AnonymousUser) -> int:
    """The signed-in user's unread notifications, for the top bar: one COUNT query, none when signed out."""
    if not user.is_authenticated:
        return 0
    return unread_count(user)
