"""Commit statuses as a small fragment that the (immutable, cached) commit page loads after it arrives."""

import re

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from repos.access import get_repo_for_user
from reviews.models import CommitStatus

_SHA_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


@require_GET
def commit_statuses(request: HttpRequest, owner: str, name: str, sha: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    if not _SHA_RE.fullmatch(sha):
        raise Http404("Not a commit.")
    statuses = CommitStatus.objects.filter(repository=repo, sha=sha).select_related("creator")
    response = render(request, "reviews/_statuses.html", {"statuses": statuses})
    response["Cache-Control"] = "private, no-cache"
    return response
