"""Repository settings for pull requests (branch protection, approval rules, merging) and organization templates.

HTTP only: the services in reviews/services.py decide and validate."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from portal.confirm import ask_to_confirm, confirmed
from portal.models import User
from repos.access import get_org_for_member, get_repo_for_user, is_org_owner
from repos.models import Repository, Role
from reviews import rules, services
from reviews.models import ApprovalRule, BranchProtection
from reviews.settings_forms import ApprovalRuleForm, BranchProtectionForm, MergingForm


def _names(users, teams) -> str:
    return ", ".join([u.username for u in users] + [f"{t.organization.username}/{t.name}" for t in teams])


def _describe_protection(protection: BranchProtection) -> list[str]:
    """What a protection asks, in words, one phrase each."""
    words = ["Changes go through a pull request" if protection.require_pull_request else "Direct pushes allowed"]
    if protection.required_checks:
        words.append(f"checks {', '.join(protection.required_checks)} must pass")
    if protection.require_up_to_date:
        words.append("must be up to date before merging")
    if protection.block_force_push:
        words.append("no force pushes")
    if protection.block_deletion:
        words.append("no deletion")
    pushers = _names(protection.push_users.all(), protection.push_teams.all())
    mergers = _names(protection.merge_users.all(), protection.merge_teams.all())
    words.append(f"push: {pushers or 'anyone with write access'}")
    words.append(f"merge: {mergers or 'anyone with write access'}")
    return words


def _describe_rule(rule: ApprovalRule) -> str:
    """A rule in words: "2 approvals from alice, acme/reviewers on release/*"."""
    count = rule.required_approvals
    text = f"{count} approval{'' if count == 1 else 's'} from {rules.describe_pool(rule)} on {rule.branch_pattern}"
    if rule.organization_id is not None:
        text += f" in repositories matching {rule.repository_pattern}"
    if rule.exclude_committers:
        text += "; committers' approvals do not count"
    return f"{text}; approvals are dismissed {rule.get_dismissal_display()}."


def _posted(request: HttpRequest) -> QueryDict | None:
    # Not "request.POST or None": a merging form with every box unticked posts nothing, and must still be checked.
    return request.POST if request.method == "POST" else None


def _service_error(form, exc: ValidationError | PermissionDenied) -> None:
    form.add_error(None, str(exc) if isinstance(exc, PermissionDenied) else exc)


# Branch protection.


def _render_branches(
    request: HttpRequest, repo: Repository, form: BranchProtectionForm, protection: BranchProtection | None = None
) -> HttpResponse:
    found = repo.branch_protections.prefetch_related(
        "push_users", "push_teams__organization", "merge_users", "merge_teams__organization"
    )
    context = {
        "repo": repo,
        "active": "branches",
        "form": form,
        "protection": protection,
        "protections": [(p, _describe_protection(p)) for p in found],
    }
    return render(request, "reviews/settings_branches.html", context, status=400 if form.errors else 200)


def _save_protection(request: HttpRequest, repo: Repository, protection: BranchProtection | None) -> HttpResponse:
    form = BranchProtectionForm(_posted(request), owner=repo.owner, protection=protection)
    if form.is_bound and form.is_valid():
        try:
            saved = services.save_branch_protection(
                protection, actor=request.user, repository=repo, **form.cleaned_data
            )
        except (ValidationError, PermissionDenied) as exc:
            _service_error(form, exc)
        else:
            messages.success(request, f"Saved the protection of {saved.branch_pattern}.")
            return redirect("review_settings:branches", repo.owner.username, repo.name)
    return _render_branches(request, repo, form, protection)


def branches(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name, need=Role.ADMIN)
    return _save_protection(request, repo, None)


def branch(request: HttpRequest, owner: str, name: str, protection_id: int) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name, need=Role.ADMIN)
    protection = get_object_or_404(BranchProtection, pk=protection_id, repository=repo)
    return _save_protection(request, repo, protection)


@require_POST
def branch_delete(request: HttpRequest, owner: str, name: str, protection_id: int) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name, need=Role.ADMIN)
    protection = get_object_or_404(BranchProtection, pk=protection_id, repository=repo)
    if not confirmed(request):
        return ask_to_confirm(
            request,
            title=f"Remove the protection of {protection.branch_pattern}?",
            consequences=["Branches matching it can then be pushed to, force-pushed and deleted by every writer."],
            button="Yes, remove this protection",
            cancel_url=reverse("review_settings:branches", args=[repo.owner.username, repo.name]),
        )
    services.delete_branch_protection(protection, actor=request.user)
    messages.success(request, f"Removed the protection of {protection.branch_pattern}.")
    return redirect("review_settings:branches", repo.owner.username, repo.name)


# Approval rules of a repository.


def _render_rules(
    request: HttpRequest, repo: Repository, form: ApprovalRuleForm, rule: ApprovalRule | None = None
) -> HttpResponse:
    own = repo.approval_rules.prefetch_related("users", "teams__organization")
    # Templates of the owning organization apply too; they are shown so that admins see every rule in force.
    templates = ApprovalRule.objects.filter(organization_id=repo.owner_id).prefetch_related(
        "users", "teams__organization"
    )
    context = {
        "repo": repo,
        "active": "rules",
        "form": form,
        "rule": rule,
        "rules": [(r, _describe_rule(r)) for r in own],
        "is_org_owner": is_org_owner(request.user, repo.owner),
        "templates": [(t, _describe_rule(t)) for t in templates if rules.applies_to(t, repo)],
    }
    return render(request, "reviews/settings_rules.html", context, status=400 if form.errors else 200)


def _save_rule(request: HttpRequest, repo: Repository, rule: ApprovalRule | None) -> HttpResponse:
    form = ApprovalRuleForm(_posted(request), owner=repo.owner, rule=rule)
    if form.is_bound and form.is_valid():
        try:
            saved = services.save_approval_rule(rule, actor=request.user, repository=repo, **form.cleaned_data)
        except (ValidationError, PermissionDenied) as exc:
            _service_error(form, exc)
        else:
            messages.success(request, f"Saved the approval rule {saved.name}.")
            return redirect("review_settings:rules", repo.owner.username, repo.name)
    return _render_rules(request, repo, form, rule)


def rules_page(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name, need=Role.ADMIN)
    return _save_rule(request, repo, None)


def rule_page(request: HttpRequest, owner: str, name: str, rule_id: int) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name, need=Role.ADMIN)
    rule = get_object_or_404(ApprovalRule, pk=rule_id, repository=repo)
    return _save_rule(request, repo, rule)


@require_POST
def rule_delete(request: HttpRequest, owner: str, name: str, rule_id: int) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name, need=Role.ADMIN)
    rule = get_object_or_404(ApprovalRule, pk=rule_id, repository=repo)
    if not confirmed(request):
        return ask_to_confirm(
            request,
            title=f"Remove the approval rule {rule.name}?",
            consequences=["Pull requests no longer need the approvals it asks for, from now on."],
            button="Yes, remove this rule",
            cancel_url=reverse("review_settings:rules", args=[repo.owner.username, repo.name]),
        )
    services.delete_approval_rule(rule, actor=request.user)
    messages.success(request, f"Removed the approval rule {rule.name}.")
    return redirect("review_settings:rules", repo.owner.username, repo.name)


# Merging.


def merging(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name, need=Role.ADMIN)
    form = MergingForm(_posted(request), settings=rules.review_settings(repo))
    if form.is_bound and form.is_valid():
        try:
            services.update_review_settings(repo, actor=request.user, **form.cleaned_data)
        except (ValidationError, PermissionDenied) as exc:
            _service_error(form, exc)
        else:
            messages.success(request, "Merge settings saved.")
            return redirect("review_settings:merging", repo.owner.username, repo.name)
    context = {"repo": repo, "active": "merging", "form": form}
    return render(request, "reviews/settings_merging.html", context, status=400 if form.errors else 200)


# Approval rule templates of an organization.


def _save_template(request: HttpRequest, org: User, rule: ApprovalRule | None) -> HttpResponse:
    form = ApprovalRuleForm(_posted(request), owner=org, template=True, rule=rule)
    if form.is_bound and form.is_valid():
        try:
            saved = services.save_approval_rule(rule, actor=request.user, organization=org, **form.cleaned_data)
        except (ValidationError, PermissionDenied) as exc:
            _service_error(form, exc)
        else:
            messages.success(request, f"Saved the approval rule template {saved.name}.")
            return redirect("review_settings:org_rules", org.username)
    templates = org.approval_rule_templates.prefetch_related("users", "teams__organization")
    context = {"org": org, "form": form, "rule": rule, "rules": [(t, _describe_rule(t)) for t in templates]}
    return render(request, "reviews/org_rules.html", context, status=400 if form.errors else 200)


def org_rules(request: HttpRequest, org: str) -> HttpResponse:
    organization = get_org_for_member(request.user, org, admin=True)
    return _save_template(request, organization, None)


def org_rule(request: HttpRequest, org: str, rule_id: int) -> HttpResponse:
    organization = get_org_for_member(request.user, org, admin=True)
    rule = get_object_or_404(ApprovalRule, pk=rule_id, organization=organization)
    return _save_template(request, organization, rule)


@require_POST
def org_rule_delete(request: HttpRequest, org: str, rule_id: int) -> HttpResponse:
    organization = get_org_for_member(request.user, org, admin=True)
    rule = get_object_or_404(ApprovalRule, pk=rule_id, organization=organization)
    if not confirmed(request):
        return ask_to_confirm(
            request,
            title=f"Remove the approval rule template {rule.name}?",
            consequences=[f"Repositories of {organization.username} no longer get the approvals it asks for."],
            button="Yes, remove this template",
            cancel_url=reverse("review_settings:org_rules", args=[organization.username]),
        )
    services.delete_approval_rule(rule, actor=request.user)
    messages.success(request, f"Removed the approval rule template {rule.name}.")
    return redirect("review_settings:org_rules", organization.username)
