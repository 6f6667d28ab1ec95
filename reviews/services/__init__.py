"""Every state change of pull requests: open, push, comment, review, rules, statuses, merge.

Views, the API, hooks and jobs all call these functions; each checks the actor's role through the access door,
records an audit event in the same transaction, and raises PermissionDenied, ValidationError or MergeRefused."""

from reviews.rules import merge_blocker
from reviews.services._base import MergeRefused, StaleHead, old_side_path
from reviews.services.comments import (
    REVIEW_EVENTS,
    InlineComment,
    add_comment,
    apply_suggestion,
    delete_comment,
    dismiss_review,
    edit_comment,
    override_approval_rules,
    resolve_thread,
    submit_review,
    suggestion_message,
    suggestion_of,
)
from reviews.services.configuration import (
    delete_approval_rule,
    delete_branch_protection,
    save_approval_rule,
    save_branch_protection,
    set_commit_status,
    update_review_settings,
)
from reviews.services.merging import default_merge_message, delete_head_branch, merge_pull_request
from reviews.services.pulls import (
    close_pull_request,
    open_pull_request,
    record_branch_update,
    remove_review_request,
    reopen_pull_request,
    request_review,
    update_pull_request,
)

__all__ = [
    "REVIEW_EVENTS",
    "InlineComment",
    "MergeRefused",
    "StaleHead",
    "add_comment",
    "apply_suggestion",
    "close_pull_request",
    "default_merge_message",
    "delete_approval_rule",
    "delete_branch_protection",
    "delete_comment",
    "delete_head_branch",
    "dismiss_review",
    "edit_comment",
    "merge_blocker",
    "merge_pull_request",
    "old_side_path",
    "open_pull_request",
    "override_approval_rules",
    "record_branch_update",
    "remove_review_request",
    "reopen_pull_request",
    "request_review",
    "resolve_thread",
    "save_approval_rule",
    "save_branch_protection",
    "set_commit_status",
    "submit_review",
    "suggestion_message",
    "suggestion_of",
    "update_pull_request",
    "update_review_settings",
]
