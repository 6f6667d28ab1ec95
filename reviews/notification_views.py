"""The user's notifications: the list, marking them read, and which kinds to receive where."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from reviews import notifications
from reviews.models import Notification

PAGE_SIZE = 50


@login_required
def notification_list(request: HttpRequest) -> HttpResponse:
    include_read = request.GET.get("all") == "1"
    inbox = notifications.inbox_for(request.user, include_read=include_read)
    page = Paginator(inbox, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "include_read": include_read, "unread": notifications.unread_count(request.user)}
    return render(request, "reviews/notifications.html", context)


@login_required
@require_POST
def notification_read(request: HttpRequest, notification_id: int) -> HttpResponse:
    notification = notifications.get_notification_for_user(request.user, notification_id)
    notifications.mark_read(notification, actor=request.user)
    # The url is written by the portal itself; checking it still keeps this from ever being an open redirect.
    if url_has_allowed_host_and_scheme(notification.url, {request.get_host()}, require_https=request.is_secure()):
        return redirect(notification.url)
    return redirect("notifications:list")


@login_required
@require_POST
def notification_read_all(request: HttpRequest) -> HttpResponse:
    count = notifications.mark_all_read(actor=request.user)
    messages.success(request, f"Marked {count} notification{'' if count == 1 else 's'} read.")
    return redirect("notifications:list")


@login_required
@require_http_methods(["GET", "POST"])
def notification_settings(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        # Checked boxes are the kinds wanted; what is stored is the kinds turned off.
        web_on, email_on = set(request.POST.getlist("web")), set(request.POST.getlist("email"))
        try:
            notifications.set_preferences(
                actor=request.user,
                web_off=[kind for kind in Notification.Kind.values if kind not in web_on],
                email_off=[kind for kind in Notification.Kind.values if kind not in email_on],
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, "Saved your notification settings.")
        return redirect("notifications:settings")
    preference = notifications.preferences_for(request.user)
    rows = [
        (kind, label, kind not in preference.web_off, kind not in preference.email_off)
        for kind, label in Notification.Kind.choices
    ]
    context = {"rows": rows, "has_email": bool(request.user.email), "section": "notifications"}
    return render(request, "reviews/notification_settings.html", context)
