"""The gates of a pull request: approval rules, branch protection, required checks and merge_blocker()."""

from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from allauth.account.models import EmailAddress
from django.db.models import Q

from portal.models import User
from repos import code, git
from repos.access import Principal, role_for
from repos.models import Repository, Role
from reviews.access import can_merge
from reviews.models import ApprovalRule, BranchProtection, CommitStatus, PullRequest, Review, ReviewSettings


def review_settings(repo: Repository) -> ReviewSettings:
    """A repository's merge settings: the defaults (unsaved) until someone changes them."""
    return ReviewSettings.objects.filter(repository=repo).first() or ReviewSettings(repository=repo)


def protections_for(repo: Repository, branch: str) -> list[BranchProtection]:
    """Every protection whose pattern matches the branch; together they say what it requires."""
    return (
        BranchProtection.objects.filter(repository=repo)
        .prefetch_related("push_users", "push_teams__members", "merge_users", "merge_teams__members")
        .matching(branch)
    )


def applies_to(rule: ApprovalRule, repo: Repository) -> bool:
    """Whether a rule is the repository's own, or a template of its organization whose name pattern matches it."""
    if rule.repository_id is not None:
        return rule.repository_id == repo.pk
    return rule.organization_id == repo.owner_id and fnmatchcase(repo.name.lower(), rule.repository_pattern.lower())


def approval_rules_for(repo: Repository, branch: str) -> list[ApprovalRule]:
    """The repository's own rules and its organization's templates that apply to a base branch."""
    rules = ApprovalRule.objects.filter(Q(repository=repo) | Q(organization_id=repo.owner_id)).prefetch_related(
        "users", "teams__members"
    )
    return [rule for rule in rules.matching(branch) if applies_to(rule, repo)]


def _in_lists(user: User, users, teams) -> bool:
    return any(u.pk == user.pk for u in users) or any(user.pk == m.pk for team in teams for m in team.members.all())


def in_pool(rule: ApprovalRule, user: User, repo: Repository) -> bool:
    """Whether a user's approval can count toward a rule: named in its pool, or, when it names nobody, a writer."""
    users, teams = list(rule.users.all()), list(rule.teams.all())
    if users or teams:
        return _in_lists(user, users, teams)
    return role_for(user, repo) >= Role.WRITE


def describe_pool(rule: ApprovalRule) -> str:
    users = sorted(u.username for u in rule.users.all())
    names = users + sorted(f"{t.organization.username}/{t.name}" for t in rule.teams.all())
    return ", ".join(names) if names else "anyone with write access"


def describe_rule_source(rule: ApprovalRule) -> str:
    """How a rule is named to people: by its name, or by the branch protection whose approvals it requires."""
    if rule.branch_protection_id is not None:
        return f"Branch protection '{rule.branch_pattern}'"
    return f"Rule '{rule.name}'"


def committer_ids(pr: PullRequest) -> set[int]:
    """Users who authored or committed any commit of the pull request, matched by their email addresses."""
    if not pr.merge_base_sha:
        return set()
    emails = set()
    for commit in git.commits_between(pr.repository.path, pr.merge_base_sha, pr.head_sha, limit=1000):
        emails |= {commit.author.email.lower(), commit.committer.email.lower()}
    if not emails:
        return set()
    ids = set(User.objects.filter(email__in=emails).values_list("pk", flat=True))
    ids |= set(EmailAddress.objects.filter(email__in=emails).values_list("user_id", flat=True))
    return ids


def latest_verdicts(pr: PullRequest) -> dict[int, Review]:
    """Each reviewer's latest approval or change request that was not dismissed: what they think now."""
    verdicts: dict[int, Review] = {}
    reviews = pr.reviews.filter(state__in=[Review.State.APPROVED, Review.State.CHANGES_REQUESTED])
    for review in reviews.select_related("author").order_by("submitted_at", "id"):
        verdicts[review.author_id] = review
    return {uid: review for uid, review in verdicts.items() if not review.is_dismissed}


def _same_patch_shas(pr: PullRequest) -> set[str]:
    """Head shas of the revisions whose change is the same as the current one's (the current included)."""
    revisions = list(pr.revisions.order_by("number"))
    if not revisions:
        return {pr.head_sha}
    current = revisions[-1]
    same = {current.head_sha}
    if current.patch_id:
        same |= {r.head_sha for r in revisions if r.patch_id == current.patch_id}
    return same


@dataclass
class RuleStatus:
    rule: ApprovalRule
    approvers: list[User] = field(default_factory=list)

    @property
    def needed(self) -> int:
        return self.rule.required_approvals

    @property
    def met(self) -> bool:
        return len(self.approvers) >= self.needed

    @property
    def reason(self) -> str:
        have = ", ".join(u.username for u in self.approvers) or "none"
        return (
            f"{describe_rule_source(self.rule)} needs {self.needed} approval{'s' if self.needed != 1 else ''}"
            f" from {describe_pool(self.rule)}; it has {len(self.approvers)} ({have})."
        )


def _assign_distinct(candidates: list[list[User]], needed: list[int]) -> list[list[User]]:
    """Give each approver to at most one rule so that as many rules as possible are met (bipartite matching)."""
    slots = [(index, n) for index, count in enumerate(needed) for n in range(count)]
    owner: dict[int, tuple[int, int]] = {}
    users = {user.pk: user for pool in candidates for user in pool}

    def augment(slot: tuple[int, int], seen: set[int]) -> bool:
        for user in candidates[slot[0]]:
            if user.pk in seen:
                continue
            seen.add(user.pk)
            if user.pk not in owner or augment(owner[user.pk], seen):
                owner[user.pk] = slot
                return True
        return False

    for slot in slots:
        augment(slot, set())
    result: list[list[User]] = [[] for _ in candidates]
    for uid, (index, _n) in owner.items():
        result[index].append(users[uid])
    return result


def approval_status(pr: PullRequest, *, exact_head: bool = False) -> list[RuleStatus]:
    """How far each rule that applies to the pull request is met, by approvals of the code it would merge now (of
    its very head commit when exact_head is set)."""
    repo = pr.repository
    rules = approval_rules_for(repo, pr.base_branch)
    if not rules:
        return []
    approvals = [r for r in latest_verdicts(pr).values() if r.state == Review.State.APPROVED]
    same_patch = _same_patch_shas(pr)
    committers = committer_ids(pr) if any(rule.exclude_committers for rule in rules) else set()
    candidates = []
    for rule in rules:
        # An approval counts when it saw this very head, or, unless the rule always dismisses, the same patch; never
        # one of older code, even when the rule keeps such approvals on the page.
        valid = {pr.head_sha} if exact_head or rule.dismissal == ApprovalRule.Dismissal.ALWAYS else same_patch
        candidates.append(
            [
                review.author
                for review in approvals
                if review.commit_sha in valid
                and review.author_id != pr.author_id
                and not (rule.exclude_committers and review.author_id in committers)
                and in_pool(rule, review.author, repo)
            ]
        )
    if review_settings(repo).distinct_approvers:
        candidates = _assign_distinct(candidates, [rule.required_approvals for rule in rules])
    return [RuleStatus(rule=rule, approvers=pool) for rule, pool in zip(rules, candidates, strict=True)]


def check_states(repo: Repository, sha: str) -> dict[str, CommitStatus]:
    return {status.context: status for status in CommitStatus.objects.filter(repository=repo, sha=sha)}


def required_checks(repo: Repository, branch: str) -> list[str]:
    contexts: list[str] = []
    for protection in protections_for(repo, branch):
        contexts += [c for c in protection.required_checks if c not in contexts]
    return contexts


def _check_blocker(pr: PullRequest) -> str | None:
    states = check_states(pr.repository, pr.head_sha)
    for context in required_checks(pr.repository, pr.base_branch):
        status = states.get(context)
        if status is None:
            return f"Required check '{context}' has not reported on {pr.head_sha[:10]}."
        if status.state != CommitStatus.State.SUCCESS:
            return f"Required check '{context}' is {status.state}."
    return None


def conflicts(pr: PullRequest) -> list[str]:
    """Files that conflict when the head merges into the base branch as it is now (cached: shas never change)."""
    repo = pr.repository
    try:
        base_sha = git.branch_sha(repo.path, pr.base_branch)
    except git.RefNotFound:
        return []

    def compute() -> list[str]:
        # A head that already contains the base merges as a fast-forward: nothing can conflict.
        if git.merge_base(repo.path, base_sha, pr.head_sha) == base_sha:
            return []
        return git.merge_check(repo.path, base_sha, pr.head_sha)

    return code.cached(("conflicts", str(repo.path), base_sha, pr.head_sha), compute)


def may_merge(pr: PullRequest, user: User | None) -> bool:
    """Write access, and a place on the merge list of every protection of the base branch that has one."""
    return user is not None and can_merge(user, pr) and on_merge_lists(user, pr.repository, pr.base_branch)


def on_merge_lists(user: User, repository: Repository, branch: str) -> bool:
    """Whether user is on the merge list of every protection of the branch that has one."""
    for protection in protections_for(repository, branch):
        users, teams = list(protection.merge_users.all()), list(protection.merge_teams.all())
        if (users or teams) and not _in_lists(user, users, teams):
            return False
    return True


def _review_blocker(pr: PullRequest, protections: list[BranchProtection]) -> str | None:
    # A change request blocks on every branch, unless each protection of this one turns that off.
    if not protections or any(p.block_on_rejected_reviews for p in protections):
        for review in latest_verdicts(pr).values():
            if review.state == Review.State.CHANGES_REQUESTED:
                return f"{review.author.username} requested changes."
    if any(p.block_on_official_review_requests for p in protections):
        request = pr.review_requests.select_related("user", "team__organization").order_by("created", "id").first()
        if request is not None:
            who = request.user.username if request.user else f"{request.team.organization.username}/{request.team.name}"
            return f"A review was requested from {who} and has not been given yet."
    return None


def _override_blocked(protections: list[BranchProtection]) -> BranchProtection | None:
    return next((p for p in protections if p.block_admin_merge_override), None)


def override_blocker(pr: PullRequest) -> str | None:
    """Why an admin may not override the approval rules of the pull request, or None."""
    protection = _override_blocked(protections_for(pr.repository, pr.base_branch))
    if protection is None:
        return None
    return f"Branch protection '{protection.branch_pattern}' does not let admins override its approval rules."


def merge_blocker(pr: PullRequest, actor: User | None = None, *, exact_head: bool = False) -> str | None:
    """Why the pull request cannot merge now (for actor, when given; counting only approvals of its very head
    commit when exact_head is set), or None: shown in the UI as it is."""
    if pr.state == PullRequest.State.MERGED:
        return "This pull request is already merged."
    if pr.state == PullRequest.State.CLOSED:
        return "This pull request is closed."
    if actor is not None and not may_merge(pr, actor):
        return f"{actor.username} may not merge into {pr.base_branch}."
    if pr.draft:
        return "This pull request is a draft; mark it ready for review first."
    repo = pr.repository
    try:
        head = git.branch_sha(repo.path, pr.head_branch)
        base = git.branch_sha(repo.path, pr.base_branch)
    except git.RefNotFound as exc:
        return f"The branch {exc} no longer exists."
    if head != pr.head_sha:
        return "The head branch moved; reload the pull request."
    conflicting = conflicts(pr)
    if conflicting:
        return f"Conflicts in {', '.join(git.label(p) for p in conflicting[:20])} must be resolved first."
    protections = protections_for(repo, pr.base_branch)
    if pr.override_at is None or _override_blocked(protections):
        reason = _review_blocker(pr, protections)
        if reason:
            return reason
        for status in approval_status(pr, exact_head=exact_head):
            if not status.met:
                return status.reason
    reason = _check_blocker(pr)
    if reason:
        return reason
    if any(p.require_up_to_date for p in protections) and not git.is_ancestor(repo.path, base, head):
        return f"The branch is behind {pr.base_branch}; bring it up to date first."
    return None


def protection_blocker(
    principal: Principal, repo: Repository, ref: str, *, is_delete: bool, forced: bool
) -> str | None:
    """Why branch protection refuses a pushed ref update, naming the rule, or None."""
    if not ref.startswith("refs/heads/"):
        return None
    branch = ref.removeprefix("refs/heads/")
    for protection in protections_for(repo, branch):
        rule = f"(rule: branch protection '{protection.branch_pattern}')"
        if is_delete and protection.block_deletion:
            return f"refusing to delete {branch!r}: deletion is blocked {rule}"
        if forced and protection.block_force_push:
            return f"refusing to force-push {branch!r}: force pushes are blocked {rule}"
        if protection.require_pull_request and not is_delete:
            return f"refusing to push to {branch!r}: changes must go through a pull request {rule}"
        users, teams = list(protection.push_users.all()), list(protection.push_teams.all())
        if (users or teams) and (principal.user is None or not _in_lists(principal.user, users, teams)):
            return f"refusing to push to {branch!r}: {principal.name} is not allowed to push {rule}"
    return None
