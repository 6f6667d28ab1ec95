"""Webhook settings pages of a repository and of an organization: the hooks, their deliveries, test and redeliver.

HTTP only: reviews.webhooks decides and validates. One set of views serves both places; the place is the
repository (its administrators) or the organization (its owners)."""

from dataclasses import dataclass

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from portal.confirm import ask_to_confirm, confirmed
from portal.models import User
from repos.access import get_org_for_member, get_repo_for_user
from repos.models import Repository, Role
from reviews import webhooks
from reviews.models import Webhook, WebhookDelivery
from reviews.webhook_forms import WebhookForm

DELIVERIES_SHOWN = 30


@dataclass
class Place:
    """Where the hooks are: a repository or an organization, and the names its URLs take."""

    repo: Repository | None = None
    org: User | None = None

    @property
    def owner(self) -> dict:
        return {"repository": self.repo} if self.repo is not None else {"organization": self.org}

    def args(self, *more) -> list:
        base = [self.repo.owner.username, self.repo.name] if self.repo is not None else [self.org.username]
        return [*base, *more]

    def url_name(self, name: str) -> str:
        return f"webhooks:{name}" if self.repo is not None else f"webhooks:org_{name}"

    def redirect(self, name: str, *more) -> HttpResponse:
        return redirect(self.url_name(name), *self.args(*more))

    def url(self, name: str, *more) -> str:
        return reverse(self.url_name(name), args=self.args(*more))

    def context(self, hook: Webhook | None = None) -> dict:
        urls = {"hooks": self.url("hooks")}
        if hook is not None:
            urls |= {name: self.url(name, hook.pk) for name in ("hook", "hook_delete", "hook_test")}
        return {"repo": self.repo, "org": self.org, "active": "hooks", "urls": urls}


def _repo_place(request: HttpRequest, owner: str, name: str) -> Place:
    return Place(repo=get_repo_for_user(request.user, owner, name, need=Role.ADMIN))


def _org_place(request: HttpRequest, org: str) -> Place:
    return Place(org=get_org_for_member(request.user, org, admin=True))


def _hook(place: Place, hook_id: int) -> Webhook:
    return get_object_or_404(webhooks.hooks_of(**place.owner), pk=hook_id)


def _save(request: HttpRequest, place: Place, hook: Webhook | None) -> HttpResponse:
    form = WebhookForm(request.POST if request.method == "POST" else None, hook=hook)
    if form.is_bound and form.is_valid():
        try:
            saved = webhooks.save_webhook(
                hook, actor=request.user, **(place.owner if hook is None else {}), **form.changes()
            )
        except (ValidationError, PermissionDenied) as exc:
            form.add_error(None, str(exc) if isinstance(exc, PermissionDenied) else exc)
        else:
            messages.success(request, f"Saved the webhook to {saved.url}.")
            return place.redirect("hook", saved.pk)
    context = place.context(hook) | {"form": form, "hook": hook}
    if hook is None:
        context["hooks"] = [
            (h, h.deliveries.first(), place.url("hook", h.pk)) for h in webhooks.hooks_of(**place.owner)
        ]
        template = "reviews/settings_hooks.html"
    else:
        deliveries = webhooks.deliveries_of(hook)[:DELIVERIES_SHOWN]
        context["deliveries"] = [
            (d, webhooks.delivery_status(d)[0], place.url("delivery", hook.pk, d.pk)) for d in deliveries
        ]
        template = "reviews/settings_hook.html"
    return render(request, template, context, status=400 if form.errors else 200)


def _delete(request: HttpRequest, place: Place, hook_id: int) -> HttpResponse:
    hook = _hook(place, hook_id)
    if not confirmed(request):
        return ask_to_confirm(
            request,
            title=f"Delete the webhook to {hook.url}?",
            consequences=["It receives no more events, and its delivery log is deleted with it."],
            button="Yes, delete this webhook",
            cancel_url=place.url("hook", hook.pk),
        )
    webhooks.delete_webhook(hook, actor=request.user)
    messages.success(request, f"Deleted the webhook to {hook.url}.")
    return place.redirect("hooks")


def _test(request: HttpRequest, place: Place, hook_id: int) -> HttpResponse:
    hook = _hook(place, hook_id)
    try:
        webhooks.test_webhook(hook, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "A test push is on its way; its delivery is at the top of the list below.")
    return place.redirect("hook", hook.pk)


def _delivery_row(place: Place, hook_id: int, delivery_id: int) -> tuple[Webhook, WebhookDelivery]:
    hook = _hook(place, hook_id)
    return hook, get_object_or_404(webhooks.deliveries_of(hook), pk=delivery_id)


def _delivery(request: HttpRequest, place: Place, hook_id: int, delivery_id: int) -> HttpResponse:
    hook, delivery = _delivery_row(place, hook_id, delivery_id)
    context = place.context(hook) | {
        "hook": hook,
        "delivery": delivery,
        "redeliver_url": place.url("redeliver", hook.pk, delivery.pk),
        "status": webhooks.delivery_status(delivery)[0],
        "request_headers": webhooks.logged_request_headers(delivery),
        "attempts": list(delivery.attempt_rows.all()),
    }
    return render(request, "reviews/settings_delivery.html", context)


def _redeliver(request: HttpRequest, place: Place, hook_id: int, delivery_id: int) -> HttpResponse:
    _, delivery = _delivery_row(place, hook_id, delivery_id)
    again = webhooks.redeliver(delivery, actor=request.user)
    messages.success(request, "Sent again: the new delivery is at the top of the list.")
    return place.redirect("delivery", hook_id, again.pk)


# A repository's hooks.


def hooks(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    return _save(request, _repo_place(request, owner, name), None)


def hook(request: HttpRequest, owner: str, name: str, hook_id: int) -> HttpResponse:
    place = _repo_place(request, owner, name)
    return _save(request, place, _hook(place, hook_id))


@require_POST
def hook_delete(request: HttpRequest, owner: str, name: str, hook_id: int) -> HttpResponse:
    return _delete(request, _repo_place(request, owner, name), hook_id)


@require_POST
def hook_test(request: HttpRequest, owner: str, name: str, hook_id: int) -> HttpResponse:
    return _test(request, _repo_place(request, owner, name), hook_id)


def delivery(request: HttpRequest, owner: str, name: str, hook_id: int, delivery_id: int) -> HttpResponse:
    return _delivery(request, _repo_place(request, owner, name), hook_id, delivery_id)


@require_POST
def redeliver(request: HttpRequest, owner: str, name: str, hook_id: int, delivery_id: int) -> HttpResponse:
    return _redeliver(request, _repo_place(request, owner, name), hook_id, delivery_id)


# An organization's hooks.


def org_hooks(request: HttpRequest, org: str) -> HttpResponse:
    return _save(request, _org_place(request, org), None)


def org_hook(request: HttpRequest, org: str, hook_id: int) -> HttpResponse:
    place = _org_place(request, org)
    return _save(request, place, _hook(place, hook_id))


@require_POST
def org_hook_delete(request: HttpRequest, org: str, hook_id: int) -> HttpResponse:
    return _delete(request, _org_place(request, org), hook_id)


@require_POST
def org_hook_test(request: HttpRequest, org: str, hook_id: int) -> HttpResponse:
    return _test(request, _org_place(request, org), hook_id)


def org_delivery(request: HttpRequest, org: str, hook_id: int, delivery_id: int) -> HttpResponse:
    return _delivery(request, _org_place(request, org), hook_id, delivery_id)


@require_POST
def org_redeliver(request: HttpRequest, org: str, hook_id: int, delivery_id: int) -> HttpResponse:
    return _redeliver(request, _org_place(request, org), hook_id, delivery_id)
