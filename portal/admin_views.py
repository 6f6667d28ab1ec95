"""Site administration: users, every SSH key, the audit log, the job queues and site settings.

Every view starts with require_site_admin, so anyone else gets the same 404 as for a missing page.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from portal import jobs, services
from portal.access import require_site_admin
from portal.confirm import ask_to_confirm, confirmed
from portal.forms import (
    AdminSshKeyForm,
    AuditFilterForm,
    CreateUserForm,
    InvitationForm,
    RevokeKeyForm,
    SiteSettingsForm,
)
from portal.keys import InvalidKey
from portal.models import AuditEvent, Invitation, RevokedKeyFingerprint, SiteSettings, SshKey, User

PAGE_SIZE = 50


def _page(request: HttpRequest, queryset):
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


def index(request: HttpRequest) -> HttpResponse:
    require_site_admin(request.user)
    return redirect("portal:admin_users")


def users(request: HttpRequest) -> HttpResponse:
    require_site_admin(request.user)
    query = request.GET.get("q", "").strip()
    people = User.objects.people().annotate(key_count=Count("ssh_keys")).order_by("username")
    if query:
        people = people.filter(Q(username__icontains=query) | Q(email__icontains=query) | Q(full_name__icontains=query))
    context = {"page": _page(request, people), "query": query, "section": "users"}
    return render(request, "portal/admin/users.html", context)


def user_create(request: HttpRequest) -> HttpResponse:
    require_site_admin(request.user)
    form = CreateUserForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            # A password chosen here is for the first sign-in only.
            user = services.create_user(actor=request.user, **form.cleaned_data, must_change_password=True)
        except ValidationError as exc:
            form.add_error("username", exc)
        else:
            messages.success(request, f"Created user {user.username}.")
            return redirect("portal:admin_users")
    return render(request, "portal/admin/user_create.html", {"form": form, "section": "users"})


def _back(request: HttpRequest, default: str) -> HttpResponse:
    """Redirect to the page the form came from (only within this site), or to default."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect(default)


def _change_user(request: HttpRequest, username: str, change) -> HttpResponse:
    """Apply one service call to a user and report the refusal, if any, as a message."""
    user = get_object_or_404(User.objects.people(), username__iexact=username)
    try:
        change(user)
    except PermissionDenied as exc:
        messages.error(request, str(exc))
    return _back(request, "portal:admin_users")


def user_set_active(request: HttpRequest, username: str) -> HttpResponse:
    require_site_admin(request.user)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    active = request.POST.get("active") == "1"
    return _change_user(
        request, username, lambda user: services.set_user_active(user, actor=request.user, active=active)
    )


def user_set_admin(request: HttpRequest, username: str) -> HttpResponse:
    require_site_admin(request.user)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    admin = request.POST.get("admin") == "1"
    return _change_user(request, username, lambda user: services.set_site_admin(user, actor=request.user, admin=admin))


def invitations(request: HttpRequest) -> HttpResponse:
    require_site_admin(request.user)
    form = InvitationForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            invitation, link = services.invite_user(actor=request.user, email=form.cleaned_data["email"])
        except ValidationError as exc:
            form.add_error("email", exc)
        else:
            messages.success(request, f"Invited {invitation.email}; the link was mailed to them. It works once: {link}")
            return redirect("portal:admin_invitations")
    context = {
        "form": form,
        "pending": Invitation.objects.pending().select_related("invited_by"),
        "site_signup_open": SiteSettings.load().open_signup,
        "section": "invitations",
    }
    return render(request, "portal/admin/invitations.html", context)


def invitation_revoke(request: HttpRequest, invitation_id: int) -> HttpResponse:
    require_site_admin(request.user)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    invitation = get_object_or_404(Invitation, pk=invitation_id)
    if not confirmed(request):
        return ask_to_confirm(
            request,
            title=f"Revoke the invitation of {invitation.email}?",
            consequences=["The link mailed to them stops working; invite them again to send a new one."],
            button="Yes, revoke this invitation",
            cancel_url=reverse("portal:admin_invitations"),
        )
    services.revoke_invitation(invitation, actor=request.user)
    messages.success(request, f"Revoked the invitation of {invitation.email}.")
    return redirect("portal:admin_invitations")


def keys(request: HttpRequest) -> HttpResponse:
    require_site_admin(request.user)
    query = request.GET.get("q", "").strip()
    form = AdminSshKeyForm(
        request.POST if request.method == "POST" else None, initial={"username": request.GET.get("user", "")}
    )
    if request.method == "POST" and form.is_valid():
        owner = User.objects.people().filter(username__iexact=form.cleaned_data["username"].strip()).first()
        if owner is None:
            form.add_error("username", f"There is no user named {form.cleaned_data['username']!r}.")
        else:
            try:
                key = services.add_ssh_key(
                    owner,
                    actor=request.user,
                    title=form.cleaned_data["title"],
                    public_key=form.cleaned_data["public_key"],
                )
            except InvalidKey as exc:
                form.add_error("public_key", str(exc))
            else:
                messages.success(request, f"Added key {key.fingerprint} for {owner.username}.")
                return redirect("portal:admin_keys")
    all_keys = SshKey.objects.user_keys().select_related("user", "added_by").order_by("user__username", "-created")
    if query:
        all_keys = all_keys.filter(Q(user__username__icontains=query) | Q(fingerprint__icontains=query))
    context = {
        "page": _page(request, all_keys),
        "query": query,
        "form": form,
        "revocations": RevokedKeyFingerprint.objects.select_related("revoked_by"),
        "section": "keys",
    }
    return render(request, "portal/admin/keys.html", context)


def _user_key(key_id: int) -> SshKey:
    return get_object_or_404(SshKey.objects.user_keys().select_related("user"), pk=key_id)


def key_remove(request: HttpRequest, key_id: int) -> HttpResponse:
    require_site_admin(request.user)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    key = _user_key(key_id)
    if not confirmed(request):
        return ask_to_confirm(
            request,
            title=f"Remove {key.user.username}'s key {key.title}?",
            consequences=[
                f"{key.fingerprint} stops working at its next connection. "
                f"{key.user.username} is told, and may add the same key again.",
                "To keep the key out for good (a lost laptop, a leaked key), revoke it instead.",
            ],
            button="Yes, remove this key",
            cancel_url=reverse("portal:admin_keys"),
        )
    services.remove_ssh_key(key, actor=request.user)
    messages.success(request, f"Removed key {key.fingerprint} of {key.user.username}.")
    return _back(request, "portal:admin_keys")


def key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    require_site_admin(request.user)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    key = _user_key(key_id)
    form = RevokeKeyForm(request.POST)
    if not confirmed(request) or not form.is_valid():
        return ask_to_confirm(
            request,
            title=f"Revoke {key.user.username}'s key {key.title}?",
            consequences=[
                f"{key.fingerprint} stops working at its next connection, and nobody can add it again "
                "(to an account or as a deploy key) until an administrator lifts the block.",
                f"{key.user.username} is told, with the reason below.",
            ],
            button="Yes, revoke this key",
            cancel_url=reverse("portal:admin_keys"),
            form=form,
        )
    services.revoke_ssh_key(key, actor=request.user, reason=form.cleaned_data["reason"])
    messages.success(request, f"Revoked key {key.fingerprint} of {key.user.username}: it cannot be added again.")
    return _back(request, "portal:admin_keys")


def key_lift(request: HttpRequest, revocation_id: int) -> HttpResponse:
    require_site_admin(request.user)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    revocation = get_object_or_404(RevokedKeyFingerprint, pk=revocation_id)
    if not confirmed(request):
        return ask_to_confirm(
            request,
            title=f"Lift the block on {revocation.fingerprint}?",
            consequences=["Anyone holding this key may then add it to their account or as a deploy key again."],
            button="Yes, lift the block",
            cancel_url=reverse("portal:admin_keys"),
        )
    services.lift_key_revocation(revocation, actor=request.user)
    messages.success(request, f"Lifted the block on {revocation.fingerprint}: it can be added again.")
    return _back(request, "portal:admin_keys")


def audit(request: HttpRequest) -> HttpResponse:
    require_site_admin(request.user)
    form = AuditFilterForm(request.GET or None)
    events = form.filter(AuditEvent.objects.all())
    actions = AuditEvent.objects.order_by("action").values_list("action", flat=True).distinct()
    context = {
        "form": form,
        "page": _page(request, events),
        "filtered": bool(request.GET.keys() - {"page"}),
        "actions": actions,
        "section": "audit",
    }
    return render(request, "portal/admin/audit.html", context)


def site_settings(request: HttpRequest) -> HttpResponse:
    require_site_admin(request.user)
    form = SiteSettingsForm(
        request.POST if request.method == "POST" else None, initial={"open_signup": SiteSettings.load().open_signup}
    )
    if request.method == "POST" and form.is_valid():
        services.set_open_signup(actor=request.user, open_signup=form.cleaned_data["open_signup"])
        messages.success(request, "Site settings saved.")
        return redirect("portal:admin_settings")
    return render(request, "portal/admin/settings.html", {"form": form, "section": "settings"})


def job_queues(request: HttpRequest) -> HttpResponse:
    require_site_admin(request.user)
    by_queue = jobs.open_job_rows()
    counts = jobs.redis_counts(sorted(by_queue))
    queues = [{"name": name, "rows": rows, "redis": counts[name]} for name, rows in sorted(by_queue.items())]
    return render(request, "portal/admin/jobs.html", {"queues": queues, "section": "jobs"})


def _job_row(kind: str, row_id: int) -> jobs.JobRow:
    row = jobs.get_job_row(kind, row_id)
    if row is None:
        raise Http404("No such job")
    return row


def _change_job(request: HttpRequest, kind: str, row_id: int, *, verb: str, consequence: str, change) -> HttpResponse:
    """Confirm, then apply one job service call and report its outcome or refusal as a message."""
    require_site_admin(request.user)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    row = _job_row(kind, row_id)
    if not confirmed(request):
        return ask_to_confirm(
            request,
            title=f"{verb} the job: {row.describe()}?",
            consequences=[consequence],
            button=f"Yes, {verb.lower()} it",
            cancel_url=reverse("portal:admin_jobs"),
        )
    try:
        change(row)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{verb}: {row.describe()}.")
    return redirect("portal:admin_jobs")


def job_requeue(request: HttpRequest, kind: str, row_id: int) -> HttpResponse:
    return _change_job(
        request,
        kind,
        row_id,
        verb="Requeue",
        consequence="It is handed to the workers again now; its attempts so far stay on the row.",
        change=lambda row: jobs.requeue_job(row, actor=request.user),
    )


def job_cancel(request: HttpRequest, kind: str, row_id: int) -> HttpResponse:
    return _change_job(
        request,
        kind,
        row_id,
        verb="Cancel",
        consequence="It will not run: a delivery still waiting in the queue finds nothing to do.",
        change=lambda row: jobs.cancel_job(row, actor=request.user),
    )
