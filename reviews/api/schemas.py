"""Request and response bodies of the reviews API: Gitea's field names, and ours where Gitea has none."""

from datetime import datetime
from typing import Literal

from ninja import Schema

from portal.api import InputSchema, UserOut, gitea_unsupported
from repos.api import RepositoryOut

StatusState = Literal["pending", "success", "failure", "error", "warning"]
ReviewEvent = Literal["APPROVE", "REQUEST_CHANGES", "COMMENT"]
Side = Literal["LEFT", "RIGHT"]
FORCE_PUSH = "force pushes are allowed to everyone who may push, or to nobody"
FILE_PATTERNS = "protection by file pattern is not supported"


class TeamOut(Schema):
    id: int
    name: str
    description: str


class BranchInfo(Schema):
    label: str
    ref: str
    sha: str
    repo_id: int
    repo: RepositoryOut


class PullRequestOut(Schema):
    """Gitea's PullRequest (1.22), every field of it, and merge_style, which is ours. The portal has no labels,
    milestones, assignees, due dates, locking or pinning: those fields hold Gitea's empty values."""

    id: int
    url: str
    number: int
    user: UserOut
    title: str
    body: str
    labels: list[dict]
    milestone: dict | None
    assignee: UserOut | None
    assignees: list[UserOut]
    requested_reviewers: list[UserOut]
    requested_reviewers_teams: list[TeamOut]
    state: Literal["open", "closed"]
    draft: bool
    is_locked: bool
    comments: int
    review_comments: int
    additions: int
    deletions: int
    changed_files: int
    html_url: str
    diff_url: str
    patch_url: str
    mergeable: bool
    merged: bool
    merged_at: datetime | None
    merge_commit_sha: str | None
    merged_by: UserOut | None
    allow_maintainer_edit: bool
    merge_style: str | None
    base: BranchInfo
    head: BranchInfo
    merge_base: str
    due_date: datetime | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    pin_order: int


class PullRequestDetailOut(PullRequestOut):
    merge_blocker: str | None


class PullRequestCreateIn(InputSchema):
    title: str
    head: str
    base: str
    body: str = ""
    draft: bool = False
    reviewers: list[str] = []
    team_reviewers: list[str] = []
    # Sent by Gitea's clients; the portal has none of these.
    assignee: gitea_unsupported(str, "pull requests have no assignees") = None
    assignees: gitea_unsupported(list[str], "pull requests have no assignees") = None
    milestone: gitea_unsupported(int, "there are no milestones") = None
    labels: gitea_unsupported(list[int], "there are no labels") = None
    due_date: gitea_unsupported(str, "pull requests have no due dates") = None


class PullRequestEditIn(InputSchema):
    title: str | None = None
    body: str | None = None
    base: str | None = None
    draft: bool | None = None
    state: Literal["open", "closed"] | None = None
    # Sent by Gitea's clients; the portal has none of these.
    assignee: gitea_unsupported(str, "pull requests have no assignees") = None
    assignees: gitea_unsupported(list[str], "pull requests have no assignees") = None
    milestone: gitea_unsupported(int, "there are no milestones") = None
    labels: gitea_unsupported(list[int], "there are no labels") = None
    due_date: gitea_unsupported(str, "pull requests have no due dates") = None
    unset_due_date: gitea_unsupported(bool, "pull requests have no due dates") = None
    allow_maintainer_edit: gitea_unsupported(bool, "anyone with write access may push to the head branch") = None


class ChangedFileOut(Schema):
    filename: str
    previous_filename: str | None
    status: str
    additions: int
    deletions: int
    changes: int
    binary: bool
    html_url: str
    contents_url: str
    raw_url: str


class CommitPerson(Schema):
    name: str
    email: str
    date: datetime


class CommitDetail(Schema):
    message: str
    author: CommitPerson
    committer: CommitPerson


class CommitParent(Schema):
    sha: str


class CommitOut(Schema):
    sha: str
    html_url: str
    commit: CommitDetail
    parents: list[CommitParent]


class ReviewOut(Schema):
    id: int
    user: UserOut
    state: Literal["APPROVED", "REQUEST_CHANGES", "COMMENT", "PENDING"]
    body: str
    commit_id: str
    stale: bool
    dismissed: bool
    dismissed_reason: str
    comments_count: int
    submitted_at: datetime | None
    updated_at: datetime
    html_url: str
    pull_request_url: str


class ReviewCommentIn(InputSchema):
    path: str
    body: str
    line: int | None = None
    side: Side = "RIGHT"
    start_line: int | None = None
    # Gitea's way to say the same: the line on the new side, or on the old one.
    new_position: int | None = None
    old_position: int | None = None


class ReviewIn(InputSchema):
    event: ReviewEvent
    body: str = ""
    commit_id: str | None = None
    comments: list[ReviewCommentIn] = []


class ReviewCommentOut(Schema):
    id: int
    body: str
    user: UserOut
    resolver: UserOut | None
    pull_request_review_id: int | None
    in_reply_to: int | None
    path: str
    side: str
    line: int | None
    start_line: int | None
    original_line: int | None
    original_start_line: int | None
    position: int
    original_position: int
    commit_id: str
    original_commit_id: str
    outdated: bool
    resolved: bool
    created_at: datetime
    updated_at: datetime
    html_url: str
    pull_request_url: str


class MergeIn(InputSchema):
    Do: Literal["merge", "squash", "rebase", "fast-forward-only"]
    head_commit_id: str | None = None
    MergeTitleField: str = ""
    MergeMessageField: str = ""
    delete_branch_after_merge: bool | None = None
    # Sent by Gitea's clients; an admin overrides the approval rules on the pull request's page, with a reason.
    MergeCommitID: gitea_unsupported(str, "the merge commit is made by the portal") = None
    force_merge: gitea_unsupported(bool, "an admin overrides the approval rules on the pull request, with a reason") = (
        None
    )
    merge_when_checks_succeed: gitea_unsupported(bool, "merges are not scheduled") = None


class StatusIn(InputSchema):
    state: StatusState
    context: str = "default"
    target_url: str = ""
    description: str = ""


class StatusOut(Schema):
    """Gitea's CommitStatus, which names the state `status`, with GitHub's `state` beside it."""

    id: int
    status: StatusState
    state: StatusState
    context: str
    target_url: str
    description: str
    url: str
    creator: UserOut | None
    created_at: datetime
    updated_at: datetime


class CombinedStatusOut(Schema):
    state: StatusState
    sha: str
    total_count: int
    statuses: list[StatusOut]
    repository: RepositoryOut
    commit_url: str
    url: str


class BranchProtectionIn(InputSchema):
    """Gitea's fields plus ours; on PATCH, what is left out stays as it was."""

    rule_name: str | None = None
    branch_name: str | None = None
    enable_push: bool | None = None
    require_pull_request: bool | None = None
    enable_push_whitelist: bool | None = None
    push_whitelist_usernames: list[str] | None = None
    push_whitelist_teams: list[str] | None = None
    enable_force_push: bool | None = None
    enable_merge_whitelist: bool | None = None
    merge_whitelist_usernames: list[str] | None = None
    merge_whitelist_teams: list[str] | None = None
    enable_status_check: bool | None = None
    status_check_contexts: list[str] | None = None
    required_approvals: int | None = None
    enable_approvals_whitelist: bool | None = None
    # Gitea spells the users of the approvers' pool in the singular; the plural is accepted too.
    approvals_whitelist_username: list[str] | None = None
    approvals_whitelist_usernames: list[str] | None = None
    approvals_whitelist_teams: list[str] | None = None
    block_on_rejected_reviews: bool | None = None
    block_on_official_review_requests: bool | None = None
    block_on_outdated_branch: bool | None = None
    dismiss_stale_approvals: bool | None = None
    ignore_stale_approvals: bool | None = None
    block_admin_merge_override: bool | None = None
    block_force_push: bool | None = None
    block_deletion: bool | None = None
    # Gitea features the portal does not have: accepted only when off.
    priority: gitea_unsupported(int, "every protection that matches a branch applies, so they have no order") = None
    push_whitelist_deploy_keys: gitea_unsupported(bool, "deploy keys cannot be put on a push list") = None
    enable_force_push_allowlist: gitea_unsupported(bool, FORCE_PUSH) = None
    force_push_allowlist_usernames: gitea_unsupported(list[str], FORCE_PUSH) = None
    force_push_allowlist_teams: gitea_unsupported(list[str], FORCE_PUSH) = None
    force_push_allowlist_deploy_keys: gitea_unsupported(bool, FORCE_PUSH) = None
    require_signed_commits: gitea_unsupported(bool, "commit signatures are not verified") = None
    protected_file_patterns: gitea_unsupported(str, FILE_PATTERNS) = None
    unprotected_file_patterns: gitea_unsupported(str, FILE_PATTERNS) = None


class BranchProtectionOut(Schema):
    rule_name: str
    branch_name: str
    priority: int
    enable_push: bool
    require_pull_request: bool
    enable_push_whitelist: bool
    push_whitelist_usernames: list[str]
    push_whitelist_teams: list[str]
    push_whitelist_deploy_keys: bool
    enable_force_push: bool
    enable_force_push_allowlist: bool
    force_push_allowlist_usernames: list[str]
    force_push_allowlist_teams: list[str]
    force_push_allowlist_deploy_keys: bool
    enable_merge_whitelist: bool
    merge_whitelist_usernames: list[str]
    merge_whitelist_teams: list[str]
    enable_status_check: bool
    status_check_contexts: list[str]
    required_approvals: int
    enable_approvals_whitelist: bool
    approvals_whitelist_username: list[str]
    approvals_whitelist_usernames: list[str]
    approvals_whitelist_teams: list[str]
    block_on_rejected_reviews: bool
    block_on_official_review_requests: bool
    block_on_outdated_branch: bool
    dismiss_stale_approvals: bool
    ignore_stale_approvals: bool
    require_signed_commits: bool
    protected_file_patterns: str
    unprotected_file_patterns: str
    block_admin_merge_override: bool
    block_force_push: bool
    block_deletion: bool
    approval_rule_id: int | None
    created_at: datetime
    updated_at: datetime


class ApprovalRuleIn(InputSchema):
    """On PATCH, what is left out stays as it was."""

    name: str | None = None
    branch_pattern: str | None = None
    required_approvals: int | None = None
    users: list[str] | None = None
    teams: list[str] | None = None
    exclude_committers: bool | None = None
    dismissal: Literal["new_code", "always", "never"] | None = None


class ApprovalRuleTemplateIn(ApprovalRuleIn):
    repository_pattern: str | None = None


class ApprovalRuleOut(Schema):
    id: int
    name: str
    branch_pattern: str
    required_approvals: int
    users: list[str]
    teams: list[str]
    exclude_committers: bool
    dismissal: str
    # The branch protection whose approvals the rule requires (changed and removed with it), or null.
    branch_protection: str | None = None
    created_at: datetime


class ApprovalRuleTemplateOut(ApprovalRuleOut):
    organization: str
    repository_pattern: str
