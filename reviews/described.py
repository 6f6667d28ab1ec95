"""What reviews tells the API about a repository and a branch in Gitea's shapes (repos.signals.repository_described
and branch_described): merge settings and open pull requests, and a branch's protection, from the rules themselves."""

from repos.access import Principal, role_for_principal
from repos.models import Repository, Role
from reviews.models import MergeStrategy, PullRequest
from reviews.rules import approval_rules_for, on_merge_lists, protections_for, required_checks, review_settings

# Gitea's merge styles are the portal's strategies by the same names.
MERGE_STYLES = {strategy.value: strategy.value for strategy in MergeStrategy}


def describe_repository(sender, *, repository: Repository, principal: Principal, **kwargs) -> dict:
    settings = review_settings(repository)
    allowed = settings.allowed_strategies()
    return {
        "has_pull_requests": True,
        "allow_merge_commits": settings.allow_merge,
        "allow_squash_merge": settings.allow_squash,
        "allow_rebase": settings.allow_rebase,
        "allow_fast_forward_only_merge": settings.allow_fast_forward,
        "default_merge_style": MERGE_STYLES[allowed[0]] if allowed else "",
        "default_delete_branch_after_merge": settings.delete_branch_after_merge,
        "open_pr_counter": PullRequest.objects.filter(repository=repository).open().count(),
    }


def describe_branch(sender, *, repository: Repository, principal: Principal, branch: str, **kwargs) -> dict:
    protections = list(protections_for(repository, branch))
    user = principal.user
    can_merge = (
        user is not None
        and role_for_principal(principal, repository) >= Role.WRITE
        and on_merge_lists(user, repository, branch)
    )
    checks = required_checks(repository, branch)
    rules = approval_rules_for(repository, branch)
    return {
        "protected": bool(protections),
        "effective_branch_protection_name": protections[0].branch_pattern if protections else "",
        "user_can_merge": can_merge,
        "required_approvals": max((rule.required_approvals for rule in rules), default=0),
        "enable_status_check": bool(checks),
        "status_check_contexts": checks,
    }
