from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from repos.access import visible_repositories


def home(request: HttpRequest) -> HttpResponse:
    repos = visible_repositories(request.user).order_by("-updated")[:50]
    return render(request, "portal/home.html", {"repositories": repos})
