from django import template

from repos.models import Repository
from reviews.models import PullRequest

register = template.Library()


@register.simple_tag
def open_pull_count(repo: Repository) -> int:
    """The repository's open pull requests, for its header: one COUNT query."""
    return PullRequest.objects.open().filter(repository=repo).count()


@register.filter
def pull_state(pr: PullRequest) -> str:
    """What the badge of a pull request says: open, draft, merged or closed."""
    if pr.state == PullRequest.State.OPEN and pr.draft:
        return "draft"
    return pr.state
