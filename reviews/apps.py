from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    name = "reviews"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from portal.signals import ssh_key_removed
        from repos import signals as repo_signals
        from reviews import described, notifications, receivers
        from reviews import signals as review_signals

        # The key's owner hears of it here, where the notifications (in the portal and by email) live.
        ssh_key_removed.connect(notifications.on_ssh_key_removed, dispatch_uid="reviews.notify_ssh_key_removed")
        # Branch protection refuses inside pre-receive, and the pushed branches' pull requests follow inside
        # post-receive, whose output prints their links: both answer synchronously.
        repo_signals.push_checked.connect(receivers.refuse_protected_update, dispatch_uid="reviews.protection")
        # The API's Repository and Branch carry the merge settings and the branch's protection.
        repo_signals.repository_described.connect(described.describe_repository, dispatch_uid="reviews.describe_repo")
        repo_signals.branch_described.connect(described.describe_branch, dispatch_uid="reviews.describe_branch")
        # Webhooks hear of a push before the pull requests it moves, as Gitea sends them.
        repo_signals.push_received.connect(receivers.hook_push, dispatch_uid="reviews.webhooks.push")
        repo_signals.push_received.connect(receivers.follow_pushed_branches, dispatch_uid="reviews.follow_push")
        for name in ("created", "renamed", "transferred", "deleted"):
            getattr(repo_signals, f"repository_{name}").connect(
                getattr(receivers, f"hook_repository_{name}"), dispatch_uid=f"reviews.webhooks.repository_{name}"
            )
        for action, receiver in receivers.PULL_REQUEST_RECEIVERS.items():
            getattr(review_signals, f"pull_request_{action}").connect(
                receiver, dispatch_uid=f"reviews.webhooks.pull_request_{action}"
            )
        review_signals.review_submitted.connect(receivers.hook_review_submitted, dispatch_uid="reviews.webhooks.review")
        review_signals.review_dismissed.connect(
            receivers.hook_review_dismissed, dispatch_uid="reviews.webhooks.review_dismissed"
        )
        review_signals.comment_created.connect(receivers.hook_comment_created, dispatch_uid="reviews.webhooks.comment")
        review_signals.commit_status_set.connect(receivers.hook_status_set, dispatch_uid="reviews.webhooks.status")
