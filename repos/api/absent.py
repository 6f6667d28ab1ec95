"""Gitea's routes for features the portal does not have (issues, labels, milestones, stars, forks, wikis).

A list answers empty, as Gitea's would for a repository without any; anything else (reading one, creating one)
answers 404 saying that the feature does not exist here, so that no client believes it made something."""

from django.http import HttpRequest, HttpResponse
from ninja import Query, Schema
from ninja.errors import HttpError

from portal.api import Message
from portal.api_pages import PageParams, paginate
from portal.api_scopes import READ_REPO, READ_USER, WRITE_REPO, WRITE_USER
from repos.api.repositories import _repo
from repos.api.router import router

WHY = {
    "issues": "The portal has no issues: it has pull requests.",
    "labels": "The portal has no labels.",
    "milestones": "The portal has no milestones.",
    "forks": "The portal has no forks: push a branch and open a pull request.",
    "stars": "The portal has no stars.",
    "wiki": "The portal has no wikis: keep documentation in the repository.",
}


class Nothing(Schema):
    """Never sent: these lists are always empty."""


def _empty_list(response: HttpResponse, pages: PageParams) -> list:
    return paginate([], response, pages)


def _repo_list(path: str, feature: str) -> None:
    @router.get(
        f"/repos/{{owner}}/{{repo}}/{path}",
        scope=READ_REPO,
        response=list[Nothing],
        tags=["absent"],
        summary=f"Always empty. {WHY[feature]}",
        operation_id=f"absent_list_{path.replace('/', '_')}",
    )
    def view(request: HttpRequest, response: HttpResponse, owner: str, repo: str, pages: Query[PageParams]):
        _repo(request, owner, repo)
        return _empty_list(response, pages)


def _absent(method: str, path: str, feature: str, scope: str) -> None:
    register = getattr(router, method.lower())

    def refuse(request: HttpRequest, owner: str, repo: str):
        raise HttpError(404, WHY[feature])

    def refuse_one(request: HttpRequest, owner: str, repo: str, index: int):
        raise HttpError(404, WHY[feature])

    register(
        path,
        scope=scope,
        response={404: Message},
        tags=["absent"],
        summary=f"Always 404. {WHY[feature]}",
        operation_id=f"absent_{method.lower()}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}",
    )(refuse_one if "{index}" in path else refuse)


for _path, _feature in (
    ("issues", "issues"),
    ("labels", "labels"),
    ("milestones", "milestones"),
    ("forks", "forks"),
    ("stargazers", "stars"),
    ("wiki/pages", "wiki"),
):
    _repo_list(_path, _feature)

R = "/repos/{owner}/{repo}"
for _method, _path, _feature, _scope in (
    ("POST", f"{R}/issues", "issues", WRITE_REPO),
    ("GET", f"{R}/issues/{{index}}", "issues", READ_REPO),
    ("POST", f"{R}/labels", "labels", WRITE_REPO),
    ("POST", f"{R}/milestones", "milestones", WRITE_REPO),
    ("POST", f"{R}/forks", "forks", WRITE_REPO),
    ("POST", f"{R}/wiki/new", "wiki", WRITE_REPO),
    ("PUT", "/user/starred/{owner}/{repo}", "stars", WRITE_USER),
    ("GET", "/user/starred/{owner}/{repo}", "stars", READ_USER),
):
    _absent(_method, _path, _feature, _scope)


@router.get(
    "/user/starred", scope=READ_USER, response=list[Nothing], tags=["absent"], summary=f"Always empty. {WHY['stars']}"
)
def list_starred(request: HttpRequest, response: HttpResponse, pages: Query[PageParams]):
    return _empty_list(response, pages)
