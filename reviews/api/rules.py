"""Branch protection and approval rule endpoints, and the approval rule templates of organizations."""

from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest
from ninja import Status
from ninja.errors import ValidationError as SchemaError

from portal.api import current_user
from portal.api_scopes import READ_ORG, READ_REPO, WRITE_ORG, WRITE_REPO
from portal.models import User
from repos.access import get_org_for_member
from repos.models import Repository, Role
from reviews import services
from reviews.api.lookups import find_people, find_teams, get_repo
from reviews.api.router import router
from reviews.api.schemas import (
    ApprovalRuleIn,
    ApprovalRuleOut,
    ApprovalRuleTemplateIn,
    ApprovalRuleTemplateOut,
    BranchProtectionIn,
    BranchProtectionOut,
)
from reviews.models import ApprovalRule, BranchProtection

# Branch protection: the repository's admins only, reads included.


def protection_out(protection: BranchProtection) -> dict:
    # Sorted: a many-to-many relation has no order of its own (PostgreSQL answers in any).
    push_users = sorted(u.username for u in protection.push_users.all())
    push_teams = sorted(t.name for t in protection.push_teams.all())
    merge_users = sorted(u.username for u in protection.merge_users.all())
    merge_teams = sorted(t.name for t in protection.merge_teams.all())
    rule = ApprovalRule.objects.filter(branch_protection=protection).first()
    approval_users = sorted(u.username for u in rule.users.all()) if rule else []
    approval_teams = sorted(t.name for t in rule.teams.all()) if rule else []
    return {
        "rule_name": protection.branch_pattern,
        "branch_name": protection.branch_pattern,
        # Every protection that matches a branch applies; none outranks another.
        "priority": 0,
        # Gitea's enable_push: false is our pull-request requirement: nobody pushes to the branch directly.
        "enable_push": not protection.require_pull_request,
        "require_pull_request": protection.require_pull_request,
        "enable_push_whitelist": bool(push_users or push_teams),
        "push_whitelist_usernames": push_users,
        "push_whitelist_teams": push_teams,
        "push_whitelist_deploy_keys": False,
        "enable_force_push": not protection.block_force_push,
        "enable_force_push_allowlist": False,
        "force_push_allowlist_usernames": [],
        "force_push_allowlist_teams": [],
        "force_push_allowlist_deploy_keys": False,
        "enable_merge_whitelist": bool(merge_users or merge_teams),
        "merge_whitelist_usernames": merge_users,
        "merge_whitelist_teams": merge_teams,
        "enable_status_check": bool(protection.required_checks),
        "status_check_contexts": list(protection.required_checks),
        "required_approvals": rule.required_approvals if rule else 0,
        "enable_approvals_whitelist": bool(approval_users or approval_teams),
        "approvals_whitelist_username": approval_users,
        "approvals_whitelist_usernames": approval_users,
        "approvals_whitelist_teams": approval_teams,
        "block_on_rejected_reviews": protection.block_on_rejected_reviews,
        "block_on_official_review_requests": protection.block_on_official_review_requests,
        "block_on_outdated_branch": protection.require_up_to_date,
        "dismiss_stale_approvals": protection.dismiss_stale_approvals,
        "ignore_stale_approvals": protection.ignore_stale_approvals,
        "require_signed_commits": False,
        "protected_file_patterns": "",
        "unprotected_file_patterns": "",
        "block_admin_merge_override": protection.block_admin_merge_override,
        "block_force_push": protection.block_force_push,
        "block_deletion": protection.block_deletion,
        "approval_rule_id": rule.pk if rule else None,
        "created_at": protection.created,
        "updated_at": protection.updated,
    }


def _refuse(field: str, message: str) -> None:
    raise SchemaError([{"loc": ("body", "payload", field), "msg": message, "type": "unsupported"}])


def _pick(name: str, value, other_name: str, other):
    """One value from two fields that say the same thing, refusing them when they disagree."""
    if value is not None and other is not None and value != other:
        raise ValidationError(f"{name} and {other_name} contradict each other; send one of them.")
    return value if value is not None else other


def _allow_list(enabled: bool | None, names: list[str] | None, current: list[str]) -> list[str]:
    # Gitea's enable_*_whitelist: false empties the list; names given replace it; neither keeps it.
    if enabled is False:
        return []
    return current if names is None else names


def _protection_fields(repository: Repository, payload: BranchProtectionIn, current: BranchProtection | None) -> dict:
    """save_branch_protection's arguments: the payload over the current protection (or the defaults)."""
    now = protection_out(current) if current is not None else {}
    # Gitea's enable_push and enable_force_push say the opposite of our require_pull_request and block_force_push.
    no_push = None if payload.enable_push is None else not payload.enable_push
    require_pull_request = _pick("enable_push", no_push, "require_pull_request", payload.require_pull_request)
    no_force_push = None if payload.enable_force_push is None else not payload.enable_force_push
    block_force_push = _pick("enable_force_push", no_force_push, "block_force_push", payload.block_force_push)
    approval_usernames = _pick(
        "approvals_whitelist_username",
        payload.approvals_whitelist_username,
        "approvals_whitelist_usernames",
        payload.approvals_whitelist_usernames,
    )
    pattern = payload.rule_name or payload.branch_name or now.get("rule_name", "")

    def keep(value, name: str, default):
        return value if value is not None else now.get(name, default)

    def allowed(enabled: bool | None, names: list[str] | None, name: str) -> list[str]:
        return _allow_list(enabled, names, now.get(name, []))

    push_users = allowed(payload.enable_push_whitelist, payload.push_whitelist_usernames, "push_whitelist_usernames")
    push_teams = allowed(payload.enable_push_whitelist, payload.push_whitelist_teams, "push_whitelist_teams")
    merge_users = allowed(
        payload.enable_merge_whitelist, payload.merge_whitelist_usernames, "merge_whitelist_usernames"
    )
    merge_teams = allowed(payload.enable_merge_whitelist, payload.merge_whitelist_teams, "merge_whitelist_teams")
    approval_users = allowed(payload.enable_approvals_whitelist, approval_usernames, "approvals_whitelist_username")
    approval_teams = allowed(
        payload.enable_approvals_whitelist, payload.approvals_whitelist_teams, "approvals_whitelist_teams"
    )
    checks = allowed(payload.enable_status_check, payload.status_check_contexts, "status_check_contexts")
    # In Gitea a list turned on but empty lets nobody in; here an empty list means everyone with write access, so
    # such a request is refused rather than read as its opposite.
    for enabled, names, field in (
        (payload.enable_push_whitelist, push_users + push_teams, "enable_push_whitelist"),
        (payload.enable_merge_whitelist, merge_users + merge_teams, "enable_merge_whitelist"),
        (payload.enable_approvals_whitelist, approval_users + approval_teams, "enable_approvals_whitelist"),
    ):
        if enabled and not names:
            _refuse(field, "names nobody; name users or teams, or send false to allow everyone with write access")
    fields = {
        "branch_pattern": pattern,
        "require_pull_request": keep(require_pull_request, "require_pull_request", True),
        "required_checks": checks,
        "require_up_to_date": keep(payload.block_on_outdated_branch, "block_on_outdated_branch", False),
        "block_force_push": keep(block_force_push, "block_force_push", True),
        "block_deletion": keep(payload.block_deletion, "block_deletion", True),
        "push_users": find_people(push_users),
        "push_teams": find_teams(repository.owner, push_teams),
        "merge_users": find_people(merge_users),
        "merge_teams": find_teams(repository.owner, merge_teams),
        "required_approvals": keep(payload.required_approvals, "required_approvals", 0),
        "approval_users": find_people(approval_users),
        "approval_teams": find_teams(repository.owner, approval_teams),
        # Left out on creation, these take the portal's defaults, which are stricter than Gitea's.
        "dismiss_stale_approvals": keep(payload.dismiss_stale_approvals, "dismiss_stale_approvals", True),
        "ignore_stale_approvals": keep(payload.ignore_stale_approvals, "ignore_stale_approvals", False),
        "block_on_rejected_reviews": keep(payload.block_on_rejected_reviews, "block_on_rejected_reviews", True),
        "block_on_official_review_requests": keep(
            payload.block_on_official_review_requests, "block_on_official_review_requests", False
        ),
        "block_admin_merge_override": keep(payload.block_admin_merge_override, "block_admin_merge_override", False),
    }
    return fields


def _protection(repository: Repository, name: str) -> BranchProtection:
    protection = BranchProtection.objects.filter(repository=repository, branch_pattern=name).first()
    if protection is None:
        raise Http404("Branch protection not found")
    return protection


@router.get(
    "/repos/{owner}/{repo}/branch_protections",
    scope=READ_REPO,
    response=list[BranchProtectionOut],
    tags=["branch protection"],
    summary="List branch protections",
)
def list_branch_protections(request: HttpRequest, owner: str, repo: str):
    repository = get_repo(request, owner, repo, Role.ADMIN)
    protections = BranchProtection.objects.filter(repository=repository).prefetch_related(
        "push_users", "push_teams", "merge_users", "merge_teams"
    )
    return [protection_out(p) for p in protections]


@router.post(
    "/repos/{owner}/{repo}/branch_protections",
    scope=WRITE_REPO,
    response={201: BranchProtectionOut},
    tags=["branch protection"],
    summary="Protect a branch pattern",
    description=(
        "`rule_name` (or `branch_name`) is the pattern, such as `main` or `release/*`. `required_approvals` (from "
        "the approvals whitelist, or anyone with write access) is kept as an approval rule of the protection. "
        "Approvals of older code never count: `dismiss_stale_approvals` dismisses them when new code is pushed, "
        "otherwise they stay on the page and `ignore_stale_approvals` must be true. Left out, "
        "`dismiss_stale_approvals` and `block_on_rejected_reviews` are true. Gitea features the portal lacks "
        "(`require_signed_commits`, file patterns, force-push allow lists, deploy keys on the push list, "
        "`priority`) are refused with 422 unless off; unknown fields are refused too. An `enable_*_whitelist` "
        "turned on must name someone: an empty list means everyone with write access."
    ),
)
def create_branch_protection(request: HttpRequest, owner: str, repo: str, payload: BranchProtectionIn):
    repository = get_repo(request, owner, repo, Role.ADMIN)
    protection = services.save_branch_protection(
        None, actor=current_user(request), repository=repository, **_protection_fields(repository, payload, None)
    )
    return Status(201, protection_out(protection))


@router.get(
    "/repos/{owner}/{repo}/branch_protections/{path:name}",
    scope=READ_REPO,
    response=BranchProtectionOut,
    tags=["branch protection"],
    summary="Get a branch protection",
)
def get_branch_protection(request: HttpRequest, owner: str, repo: str, name: str):
    return protection_out(_protection(get_repo(request, owner, repo, Role.ADMIN), name))


@router.patch(
    "/repos/{owner}/{repo}/branch_protections/{path:name}",
    scope=WRITE_REPO,
    response=BranchProtectionOut,
    tags=["branch protection"],
    summary="Change a branch protection",
)
def edit_branch_protection(request: HttpRequest, owner: str, repo: str, name: str, payload: BranchProtectionIn):
    repository = get_repo(request, owner, repo, Role.ADMIN)
    protection = _protection(repository, name)
    protection = services.save_branch_protection(
        protection, actor=current_user(request), **_protection_fields(repository, payload, protection)
    )
    return protection_out(protection)


@router.delete(
    "/repos/{owner}/{repo}/branch_protections/{path:name}",
    scope=WRITE_REPO,
    response={204: None},
    tags=["branch protection"],
    summary="Remove a branch protection",
)
def delete_branch_protection(request: HttpRequest, owner: str, repo: str, name: str):
    repository = get_repo(request, owner, repo, Role.ADMIN)
    services.delete_branch_protection(_protection(repository, name), actor=current_user(request))
    return Status(204, None)


# Approval rules of a repository, and the templates an organization gives its repositories.


def rule_out(rule: ApprovalRule) -> dict:
    out = {
        "id": rule.pk,
        "name": rule.name,
        "branch_pattern": rule.branch_pattern,
        "required_approvals": rule.required_approvals,
        "users": sorted(u.username for u in rule.users.all()),
        "teams": sorted(t.name for t in rule.teams.all()),
        "exclude_committers": rule.exclude_committers,
        "dismissal": rule.dismissal,
        "branch_protection": rule.branch_protection.branch_pattern if rule.branch_protection_id else None,
        "created_at": rule.created,
    }
    if rule.organization_id:
        out |= {"organization": rule.organization.username, "repository_pattern": rule.repository_pattern}
    return out


def _rule_fields(owner: User, payload: ApprovalRuleIn, current: ApprovalRule | None) -> dict:
    """save_approval_rule's arguments: the payload over the current rule (or the defaults)."""
    now = rule_out(current) if current is not None else {}

    def keep(name: str, default):
        value = getattr(payload, name, None)
        return value if value is not None else now.get(name, default)

    fields = {
        "name": keep("name", ""),
        "branch_pattern": keep("branch_pattern", "*"),
        "required_approvals": keep("required_approvals", 1),
        "users": find_people(keep("users", [])),
        "teams": find_teams(owner, keep("teams", [])),
        "exclude_committers": keep("exclude_committers", False),
        "dismissal": keep("dismissal", ApprovalRule.Dismissal.NEW_CODE),
    }
    if isinstance(payload, ApprovalRuleTemplateIn):
        fields["repository_pattern"] = keep("repository_pattern", "*")
    return fields


def _repo_rule(repository: Repository, rule_id: int) -> ApprovalRule:
    rule = ApprovalRule.objects.filter(repository=repository, pk=rule_id).first()
    if rule is None:
        raise Http404("Approval rule not found")
    return rule


@router.get(
    "/repos/{owner}/{repo}/approval_rules",
    scope=READ_REPO,
    response=list[ApprovalRuleOut],
    tags=["approval rule"],
    summary="List a repository's approval rules",
)
def list_approval_rules(request: HttpRequest, owner: str, repo: str):
    repository = get_repo(request, owner, repo, Role.ADMIN)
    found = ApprovalRule.objects.filter(repository=repository).prefetch_related("users", "teams")
    return [rule_out(rule) for rule in found]


@router.post(
    "/repos/{owner}/{repo}/approval_rules",
    scope=WRITE_REPO,
    response={201: ApprovalRuleOut},
    tags=["approval rule"],
    summary="Add an approval rule",
    description="`required_approvals` from the pool of `users` and `teams` (empty: anyone with write access).",
)
def create_approval_rule(request: HttpRequest, owner: str, repo: str, payload: ApprovalRuleIn):
    repository = get_repo(request, owner, repo, Role.ADMIN)
    rule = services.save_approval_rule(
        None, actor=current_user(request), repository=repository, **_rule_fields(repository.owner, payload, None)
    )
    return Status(201, rule_out(rule))


@router.get(
    "/repos/{owner}/{repo}/approval_rules/{id}",
    scope=READ_REPO,
    response=ApprovalRuleOut,
    tags=["approval rule"],
    summary="Get an approval rule",
)
def get_approval_rule(request: HttpRequest, owner: str, repo: str, id: int):
    return rule_out(_repo_rule(get_repo(request, owner, repo, Role.ADMIN), id))


@router.patch(
    "/repos/{owner}/{repo}/approval_rules/{id}",
    scope=WRITE_REPO,
    response=ApprovalRuleOut,
    tags=["approval rule"],
    summary="Change an approval rule",
)
def edit_approval_rule(request: HttpRequest, owner: str, repo: str, id: int, payload: ApprovalRuleIn):
    repository = get_repo(request, owner, repo, Role.ADMIN)
    rule = _repo_rule(repository, id)
    rule = services.save_approval_rule(
        rule, actor=current_user(request), **_rule_fields(repository.owner, payload, rule)
    )
    return rule_out(rule)


@router.delete(
    "/repos/{owner}/{repo}/approval_rules/{id}",
    scope=WRITE_REPO,
    response={204: None},
    tags=["approval rule"],
    summary="Remove an approval rule",
)
def delete_approval_rule(request: HttpRequest, owner: str, repo: str, id: int):
    repository = get_repo(request, owner, repo, Role.ADMIN)
    services.delete_approval_rule(_repo_rule(repository, id), actor=current_user(request))
    return Status(204, None)


def _org(request: HttpRequest, org: str) -> User:
    """An organization whose templates the caller administers: outsiders get 404, members who do not own it 403."""
    return get_org_for_member(current_user(request), org, admin=True)


def _template(organization: User, rule_id: int) -> ApprovalRule:
    rule = ApprovalRule.objects.filter(organization=organization, pk=rule_id).select_related("organization").first()
    if rule is None:
        raise Http404("Approval rule template not found")
    return rule


@router.get(
    "/orgs/{org}/approval_rule_templates",
    scope=READ_ORG,
    response=list[ApprovalRuleTemplateOut],
    tags=["approval rule"],
    summary="List an organization's approval rule templates",
)
def list_approval_rule_templates(request: HttpRequest, org: str):
    organization = _org(request, org)
    found = ApprovalRule.objects.filter(organization=organization).select_related("organization")
    return [rule_out(rule) for rule in found.prefetch_related("users", "teams")]


@router.post(
    "/orgs/{org}/approval_rule_templates",
    scope=WRITE_ORG,
    response={201: ApprovalRuleTemplateOut},
    tags=["approval rule"],
    summary="Add an approval rule template",
    description="The rule applies to the organization's repositories whose names match `repository_pattern`.",
)
def create_approval_rule_template(request: HttpRequest, org: str, payload: ApprovalRuleTemplateIn):
    organization = _org(request, org)
    rule = services.save_approval_rule(
        None, actor=current_user(request), organization=organization, **_rule_fields(organization, payload, None)
    )
    return Status(201, rule_out(rule))


@router.get(
    "/orgs/{org}/approval_rule_templates/{id}",
    scope=READ_ORG,
    response=ApprovalRuleTemplateOut,
    tags=["approval rule"],
    summary="Get an approval rule template",
)
def get_approval_rule_template(request: HttpRequest, org: str, id: int):
    return rule_out(_template(_org(request, org), id))


@router.patch(
    "/orgs/{org}/approval_rule_templates/{id}",
    scope=WRITE_ORG,
    response=ApprovalRuleTemplateOut,
    tags=["approval rule"],
    summary="Change an approval rule template",
)
def edit_approval_rule_template(request: HttpRequest, org: str, id: int, payload: ApprovalRuleTemplateIn):
    organization = _org(request, org)
    rule = _template(organization, id)
    rule = services.save_approval_rule(rule, actor=current_user(request), **_rule_fields(organization, payload, rule))
    return rule_out(rule)


@router.delete(
    "/orgs/{org}/approval_rule_templates/{id}",
    scope=WRITE_ORG,
    response={204: None},
    tags=["approval rule"],
    summary="Remove an approval rule template",
)
def delete_approval_rule_template(request: HttpRequest, org: str, id: int):
    organization = _org(request, org)
    services.delete_approval_rule(_template(organization, id), actor=current_user(request))
    return Status(204, None)
