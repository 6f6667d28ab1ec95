from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from repos import git
from repos.access import get_repo_for_user


def detail(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    return render(request, "repos/detail.html", {"repo": repo, "branches": git.branches(repo.path)})
