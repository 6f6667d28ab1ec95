"""What reviews announces to the apps above it (webhooks, releases); reviews knows no one who listens.

Each signal is sent once, from the one service that made the change, inside its transaction; a receiver that
does more than read hands its work to a job enqueued after the commit. All carry the keyword argument actor
(the User who acted, or None when a push by a deploy key did it)."""

from django.dispatch import Signal

# sender=PullRequest, keyword argument pull_request; edited also before and after (title, base, draft),
# synchronized also revision (the new head), merged also by_push (True when a push merged it by hand).
pull_request_opened = Signal()
pull_request_edited = Signal()
pull_request_synchronized = Signal()
pull_request_closed = Signal()
pull_request_reopened = Signal()
pull_request_merged = Signal()

# sender=Review, keyword arguments review and pull_request; dismissed also reason.
review_submitted = Signal()
review_dismissed = Signal()

# sender=Comment, keyword arguments comment and pull_request: a published comment (a review's comments come with
# review_submitted).
comment_created = Signal()

# sender=CommitStatus, keyword arguments status and repository.
commit_status_set = Signal()
