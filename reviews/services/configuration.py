"""Commit statuses, approval rules, branch protection and a repository's merge settings."""

import re
from collections.abc import Iterable

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from portal import audit
from portal.models import Team, User
from portal.validators import field_error
from repos import git
from repos.access import is_org_owner
from repos.models import Repository, Role
from reviews import rules, signals
from reviews.models import ApprovalRule, BranchProtection, CommitStatus, ReviewSettings
from reviews.services._base import require_role


@transaction.atomic
def set_commit_status(
    repo: Repository,
    *,
    actor: User,
    sha: str,
    state: str,
    context: str = "default",
    target_url: str = "",
    description: str = "",
    known_commit: bool = False,
) -> CommitStatus:
    """Record what a CI says about a commit; the latest report per context wins.

    known_commit says that the caller already found sha to be a full commit id of repo (a build's head, checked
    when its first status was posted), so that a build worker without the repository's git directory can post."""
    require_role(actor, repo, Role.WRITE)
    if state not in CommitStatus.State.values:
        raise ValidationError(f"state must be one of {', '.join(CommitStatus.State.values)}.")
    context = (context or "default").strip()[:255]
    if target_url and not target_url.startswith(("http://", "https://")):
        raise ValidationError("target_url must be an http(s) URL.")
    if not known_commit:
        try:
            # A short sha is stored in full, so that it meets a required check on the head it names.
            sha = git.commit(repo.path, sha).sha
        except (git.GitError, KeyError, ValueError):
            raise ValidationError(f"{sha[:40]!r} is not a commit of {repo.full_name}.") from None
    status, _created = CommitStatus.objects.update_or_create(
        repository=repo,
        sha=sha,
        context=context,
        defaults={
            "state": state,
            "target_url": target_url,
            "description": description[:1000],
            "creator": actor,
            "updated": timezone.now(),
        },
    )
    audit.record(actor, "commit_status.set", repo, after={"sha": sha, "context": context, "state": state})
    signals.commit_status_set.send(CommitStatus, status=status, repository=repo, actor=actor)
    return status


# Rules and settings.


def _check_patterns(*patterns: str) -> None:
    # Branch and repository names never hold whitespace, so such a pattern would silently match nothing.
    for pattern in patterns:
        if re.search(r"\s", pattern):
            raise ValidationError(f"{pattern!r} is not one pattern: use one rule per pattern, without spaces.")


def _require_rule_owner(actor: User, *, repository: Repository | None, organization: User | None) -> None:
    if repository is not None:
        require_role(actor, repository, Role.ADMIN)
    elif organization is None or not is_org_owner(actor, organization):
        raise PermissionDenied("Only the organization's owners manage its rule templates.")


def _refuse_protection_rule(rule: ApprovalRule | None) -> None:
    # A protection's "require N approvals" lives and dies with the protection, so that both always say the same.
    if rule is not None and rule.branch_protection_id is not None:
        raise ValidationError(
            f"This rule comes from branch protection '{rule.branch_protection.branch_pattern}'; change it there."
        )


@transaction.atomic
def save_approval_rule(
    rule: ApprovalRule | None,
    *,
    actor: User,
    repository: Repository | None = None,
    organization: User | None = None,
    name: str,
    branch_pattern: str = "*",
    repository_pattern: str = "*",
    required_approvals: int = 1,
    users: Iterable[User] = (),
    teams: Iterable[Team] = (),
    exclude_committers: bool = False,
    dismissal: str = ApprovalRule.Dismissal.NEW_CODE,
) -> ApprovalRule:
    """Create or change an approval rule of a repository, or a template of an organization."""
    if rule is not None:
        repository, organization = rule.repository, rule.organization
    _require_rule_owner(actor, repository=repository, organization=organization)
    _refuse_protection_rule(rule)
    if not name.strip() or not branch_pattern.strip():
        raise ValidationError("A rule needs a name and a branch pattern.")
    _check_patterns(branch_pattern.strip(), repository_pattern.strip())
    if not 1 <= required_approvals <= 50:
        raise ValidationError("A rule needs between 1 and 50 approvals.")
    if dismissal not in ApprovalRule.Dismissal.values:
        raise ValidationError(f"dismissal must be one of {', '.join(ApprovalRule.Dismissal.values)}.")
    owner = repository.owner if repository is not None else organization
    teams = list(teams)
    if any(team.organization_id != owner.pk for team in teams):
        raise ValidationError(f"Pool teams must belong to {owner.username}.")
    before = None if rule is None else {"name": rule.name, "required": rule.required_approvals}
    rule = rule or ApprovalRule(repository=repository, organization=organization)
    rule.name, rule.branch_pattern, rule.repository_pattern = (
        name.strip()[:100],
        branch_pattern.strip(),
        repository_pattern.strip() or "*",
    )
    rule.required_approvals, rule.exclude_committers, rule.dismissal = required_approvals, exclude_committers, dismissal
    rule.save()
    rule.users.set(users)
    rule.teams.set(teams)
    audit.record(
        actor,
        "approval_rule.save",
        repository or organization,
        before=before,
        after={"rule": rule.pk, "name": rule.name, "required": required_approvals},
    )
    return rule


@transaction.atomic
def delete_approval_rule(rule: ApprovalRule, *, actor: User) -> None:
    """Remove an approval rule or template."""
    _require_rule_owner(actor, repository=rule.repository, organization=rule.organization)
    _refuse_protection_rule(rule)
    audit.record(actor, "approval_rule.delete", rule.repository or rule.organization, before={"name": rule.name})
    rule.delete()


@transaction.atomic
def save_branch_protection(
    protection: BranchProtection | None,
    *,
    actor: User,
    repository: Repository | None = None,
    branch_pattern: str,
    require_pull_request: bool = True,
    required_checks: Iterable[str] = (),
    require_up_to_date: bool = False,
    block_force_push: bool = True,
    block_deletion: bool = True,
    push_users: Iterable[User] = (),
    push_teams: Iterable[Team] = (),
    merge_users: Iterable[User] = (),
    merge_teams: Iterable[Team] = (),
    required_approvals: int = 0,
    approval_users: Iterable[User] = (),
    approval_teams: Iterable[Team] = (),
    dismiss_stale_approvals: bool = True,
    ignore_stale_approvals: bool = False,
    block_on_rejected_reviews: bool = True,
    block_on_official_review_requests: bool = False,
    block_admin_merge_override: bool = False,
) -> BranchProtection:
    """Create or change the protection of a branch pattern, with the approval rule that requires its approvals."""
    repository = protection.repository if protection is not None else repository
    require_role(actor, repository, Role.ADMIN)
    branch_pattern = branch_pattern.strip()
    if not branch_pattern:
        raise ValidationError("A protection needs a branch pattern.")
    _check_patterns(branch_pattern)
    clash = BranchProtection.objects.filter(repository=repository, branch_pattern=branch_pattern)
    if protection is not None:
        clash = clash.exclude(pk=protection.pk)
    if clash.exists():
        raise ValidationError(f"{branch_pattern!r} is already protected; edit that protection.")
    approval_users, approval_teams = list(approval_users), list(approval_teams)
    teams = [*push_teams, *merge_teams, *approval_teams]
    if any(team.organization_id != repository.owner_id for team in teams):
        raise ValidationError(f"Teams must belong to {repository.owner.username}.")
    _check_approvals(
        required_approvals, approval_users + approval_teams, dismiss_stale_approvals, ignore_stale_approvals
    )
    before = None if protection is None else {"pattern": protection.branch_pattern}
    protection = protection or BranchProtection(repository=repository)
    protection.branch_pattern = branch_pattern
    protection.require_pull_request, protection.require_up_to_date = require_pull_request, require_up_to_date
    protection.required_checks = [c.strip() for c in required_checks if c.strip()]
    protection.block_force_push, protection.block_deletion = block_force_push, block_deletion
    protection.dismiss_stale_approvals, protection.ignore_stale_approvals = (
        dismiss_stale_approvals,
        ignore_stale_approvals,
    )
    protection.block_on_rejected_reviews = block_on_rejected_reviews
    protection.block_on_official_review_requests = block_on_official_review_requests
    protection.block_admin_merge_override = block_admin_merge_override
    protection.updated = timezone.now()
    protection.save()
    protection.push_users.set(push_users)
    protection.push_teams.set(push_teams)
    protection.merge_users.set(merge_users)
    protection.merge_teams.set(merge_teams)
    _save_protection_rule(protection, required_approvals, approval_users, approval_teams)
    audit.record(
        actor,
        "branch_protection.save",
        repository,
        before=before,
        after={
            "pattern": branch_pattern,
            "checks": protection.required_checks,
            "required_approvals": required_approvals,
            "dismiss_stale_approvals": dismiss_stale_approvals,
            "block_on_rejected_reviews": block_on_rejected_reviews,
            "block_on_official_review_requests": block_on_official_review_requests,
            "block_admin_merge_override": block_admin_merge_override,
        },
    )
    return protection


def _check_approvals(required: int, pool: list, dismiss_stale: bool, ignore_stale: bool) -> None:
    if not 0 <= required <= 50:
        raise ValidationError("A protection requires between 0 and 50 approvals.")
    if pool and not required:
        raise ValidationError("Approvers count only toward required approvals: require at least one, or name nobody.")
    # Approvals of older code never count toward a rule here: a review is of the code it saw. Keeping them on the
    # page (no dismissal) is fine; asking for them to count is refused rather than quietly not done.
    if required and not dismiss_stale and not ignore_stale:
        raise field_error(
            "approvals of older code never count toward required approvals here: with dismiss_stale_approvals off, "
            "ignore_stale_approvals must be on",
            "ignore_stale_approvals",
        )


def _save_protection_rule(
    protection: BranchProtection, required: int, users: list[User], teams: list[Team]
) -> ApprovalRule | None:
    """The approval rule a protection owns: there while it requires approvals, and saying what the protection says."""
    rule = ApprovalRule.objects.filter(branch_protection=protection).first()
    if not required:
        if rule is not None:
            rule.delete()
        return None
    rule = rule or ApprovalRule(repository=protection.repository, branch_protection=protection)
    rule.name = f"Branch protection {protection.branch_pattern}"[:100]
    rule.branch_pattern = protection.branch_pattern
    rule.required_approvals = required
    rule.dismissal = (
        ApprovalRule.Dismissal.NEW_CODE if protection.dismiss_stale_approvals else ApprovalRule.Dismissal.NEVER
    )
    rule.save()
    rule.users.set(users)
    rule.teams.set(teams)
    return rule


@transaction.atomic
def delete_branch_protection(protection: BranchProtection, *, actor: User) -> None:
    """Remove a branch protection, and the approval rule it owns."""
    require_role(actor, protection.repository, Role.ADMIN)
    audit.record(
        actor, "branch_protection.delete", protection.repository, before={"pattern": protection.branch_pattern}
    )
    ApprovalRule.objects.filter(branch_protection=protection).delete()
    protection.delete()


@transaction.atomic
def update_review_settings(repo: Repository, *, actor: User, **values: bool) -> ReviewSettings:
    """Change which merge strategies a repository allows and how approvals count."""
    require_role(actor, repo, Role.ADMIN)
    found = rules.review_settings(repo)
    known = {
        f.name
        for f in ReviewSettings._meta.fields
        if isinstance(f, type(ReviewSettings._meta.get_field("allow_merge")))
    }
    for name, value in values.items():
        if name not in known:
            raise ValidationError(f"Unknown setting {name!r}.")
        setattr(found, name, bool(value))
    if not found.allowed_strategies():
        raise ValidationError("Allow at least one merge strategy.")
    found.save()
    audit.record(actor, "review_settings.update", repo, after=values)
    return found
