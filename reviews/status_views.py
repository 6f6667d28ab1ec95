"""Commit statuses for pages cached by sha, which load them after they arrive: a fragment for the commit page, and the
combined state of many commits at once for the commit and branch lists."""

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from repos import git
from repos.access import get_repo_for_user
from reviews.models import CommitStatus

# A page of the commit list shows 50 commits; a longer list of shas is cut here.
BATCH_LIMIT = 100


@require_GET
def commit_statuses(request: HttpRequest, owner: str, name: str, sha: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    if not git.is_sha(sha):
        raise Http404("Not a commit.")
    statuses = CommitStatus.objects.filter(repository=repo, sha=sha).select_related("creator")
    response = render(request, "reviews/_statuses.html", {"statuses": statuses})
    response["Cache-Control"] = "private, no-cache"
    return response


@require_GET
def commit_statuses_batch(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    """?sha=a&sha=b: each commit's combined state and its checks, for the commits that have any."""
    repo = get_repo_for_user(request.user, owner, name)
    shas = [sha for sha in dict.fromkeys(request.GET.getlist("sha")) if git.is_sha(sha)][:BATCH_LIMIT]
    by_sha: dict[str, list[CommitStatus]] = {}
    for status in CommitStatus.objects.filter(repository=repo, sha__in=shas):
        by_sha.setdefault(status.sha, []).append(status)
    found = {
        sha: {
            "state": CommitStatus.combined(s.state for s in statuses),
            "total_count": len(statuses),
            "statuses": [
                {"context": s.context, "state": s.state, "description": s.description, "target_url": s.target_url}
                for s in statuses
            ],
        }
        for sha, statuses in by_sha.items()
    }
    response = JsonResponse({"statuses": found})
    response["Cache-Control"] = "private, no-cache"
    return response
