"""One confirmation step for every destructive action, on the server, so it works without JavaScript.

A view asks `confirmed(request)` before its service call; when the POST does not carry confirmed=1, it returns
`ask_to_confirm(...)`: a page saying what will happen, with a button that posts the same fields again plus
confirmed=1, and a Cancel link. Nothing changes until that second POST."""

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme

CONFIRMED_FIELD = "confirmed"
# Fields that are never carried over: the CSRF token is rendered afresh, and the flag is the button's own.
_NOT_CARRIED = {"csrfmiddlewaretoken", CONFIRMED_FIELD}


def confirmed(request: HttpRequest) -> bool:
    """True when this POST is the answer to a confirmation page."""
    return request.method == "POST" and request.POST.get(CONFIRMED_FIELD) == "1"


def _cancel_url(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return default


def ask_to_confirm(
    request: HttpRequest,
    *,
    title: str,
    consequences: list[str],
    button: str,
    cancel_url: str,
    form: forms.Form | None = None,
) -> HttpResponse:
    """The page that asks to confirm this POST; form adds fields to fill in on the way (such as a reason)."""
    own_fields = set(form.fields) if form is not None else set()
    carried = [
        (name, value)
        for name, values in request.POST.lists()
        if name not in _NOT_CARRIED and name not in own_fields
        for value in values
    ]
    context = {
        "title": title,
        "consequences": consequences,
        "button": button,
        "cancel_url": _cancel_url(request, cancel_url),
        "carried": carried,
        "form": form,
        "confirmed_field": CONFIRMED_FIELD,
    }
    return render(request, "portal/confirm.html", context)
