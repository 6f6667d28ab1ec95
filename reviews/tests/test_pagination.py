"""Out-of-range pages, on every list of the API and the web: a 422 naming the parameter or an empty page from the
API, a normal page (or the code pages' 404) from the web; never a conflict or a server error."""

import functools

import pytest
from django.test import Client

from portal import services as portal_services
from portal.api import api
from repos import git
from repos import services as repo_services
from repos.access import Principal
from reviews import services, webhooks
from reviews.models import Webhook
from reviews.tests.conftest import make_branch

API = "/api/v1"
HUGE = "288230376151711743"
# More digits than Python turns into an int from text.
ENDLESS = "9" * 5000
GATE = (
    b"version: 1\nname: gate\nsource:\n  branch: gate\nstages:\n  - name: Approval\n    actions:\n"
    b"      - {name: Approve, type: approval, environment: dev}\n"
)


@pytest.fixture
def pull(private_repo, alice, bob):
    # The buildspec gives the pull request a build, for the lists of builds and of a build's artifacts.
    spec = b"version: 0.2\nphases:\n  build:\n    commands:\n      - echo ok\n"
    make_branch(private_repo, "feature", {"parser.c": b"int parse;\n", "buildspec.yml": spec})
    # A webhook of the repository and one of an organization, for their lists and their deliveries' lists.
    org = portal_services.create_organization(actor=alice, name="acme")
    for place in ({"repository": private_repo}, {"organization": org}):
        webhooks.save_webhook(None, actor=alice, url="https://example.com/hook", **place)
    # A pipeline, read from the branch gate when it was pushed, for the list of its executions.
    gate = make_branch(private_repo, "gate", {"pipeline.yml": GATE})
    update = repo_services.RefUpdate(old_sha=git.ZERO_SHA, new_sha=gate, ref="refs/heads/gate")
    repo_services.record_push(private_repo, actor=Principal(user=alice), protocol="http", updates=[update])
    return services.open_pull_request(private_repo, actor=bob, title="Fix the parser", base="main", head="feature")


@pytest.fixture
def admin_token(admin):
    _token, raw = portal_services.create_access_token(
        admin, actor=admin, name="pages", scopes=["api", "admin", "read:repo", "read:user", "read:org"], expires_at=None
    )
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def paged_operations() -> list[str]:
    """The path of every GET operation of the API that takes a page, as the OpenAPI document lists them."""
    import portal.api_urls  # noqa: F401  (mounting the URLs adds the repository routes to the API)

    schema = api.get_openapi_schema()
    return sorted(
        path
        for path, operations in schema["paths"].items()
        if any(p["name"] == "page" and p["in"] == "query" for p in operations.get("get", {}).get("parameters", []))
    )


@functools.cache
def size_parameter(path: str) -> str:
    """The page size's name: limit as in Gitea, or per_page in the lists that follow GitHub's (builds)."""
    params = api.get_openapi_schema()["paths"][path]["get"]["parameters"]
    return "per_page" if any(p["name"] == "per_page" for p in params) else "limit"


def items(body):
    """A list's items: the body itself, or the one list in a GitHub-shaped body ({"total_count", "artifacts"})."""
    if isinstance(body, list):
        return body
    [found] = [value for value in body.values() if isinstance(value, list)]
    return found


def test_every_paged_list_of_the_api_takes_the_same_parameters():
    schema = api.get_openapi_schema()
    paths = paged_operations()
    assert len(paths) >= 12
    for path in paths:
        params = {p["name"]: p for p in schema["paths"][path]["get"]["parameters"] if p["in"] == "query"}
        size = params[size_parameter(path)]
        assert params["page"]["schema"]["minimum"] == 1, path
        assert (size["schema"]["minimum"], size["schema"]["maximum"]) == (1, 100), path


def _run_id(headers: dict) -> str:
    """The id of the pull request's build."""
    runs = Client().get(f"{API}/repos/alice/project/actions/runs", **headers).json()["workflow_runs"]
    return str(runs[0]["id"])


def _url(path: str, pull, run_id: str) -> str:
    repo = pull.repository
    values = {
        "run_id": run_id,
        "owner": repo.owner.username,
        "repo": repo.name,
        "index": str(pull.number),
        "sha": pull.head_sha,
        "ref": "main",
        "org": "acme",
        "username": "alice",
        "pipeline_name": "gate",
        "id": str(Webhook.objects.get(repository__isnull=path.startswith(f"{API}/orgs/")).pk),
    }
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, path
    return path.removeprefix(API)


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"page": "0"}, "page"),
        ({"page": "-1"}, "page"),
        ({"page": "two"}, "page"),
        ({"page": ENDLESS}, "page"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": HUGE}, "limit"),
        ({"limit": "ten"}, "limit"),
    ],
)
def test_a_page_or_limit_out_of_range_is_a_422_naming_it(query, named, pull, admin_token):
    client, run_id = Client(), _run_id(admin_token)
    for path in paged_operations():
        size = size_parameter(path)
        asked = {size if name == "limit" else name: value for name, value in query.items()}
        named_here = size if named == "limit" else named
        response = client.get(API + _url(path, pull, run_id), asked, **admin_token)
        assert response.status_code == 422, (path, asked, response.content)
        body = response.json()
        assert [e["field"] for e in body["errors"]] == [f"query.{named_here}"], (path, body)
        assert named_here in body["message"], (path, body)


@pytest.mark.parametrize("page", ["2", "1000", HUGE, str(2**70)])
def test_a_page_past_the_end_is_empty(page, pull, admin_token):
    client, run_id = Client(), _run_id(admin_token)
    for path in paged_operations():
        url, size = API + _url(path, pull, run_id), size_parameter(path)
        first = client.get(url, {size: 100}, **admin_token)
        assert first.status_code == 200, (path, first.content)
        response = client.get(url, {"page": page, size: 100}, **admin_token)
        assert response.status_code == 200, (path, page, response.content)
        assert items(response.json()) == [], (path, page)
        assert response["X-Total-Count"] == first["X-Total-Count"], path


def test_pages_split_a_list_and_count_it(pull, admin_token):
    client = Client()
    whole = client.get(f"{API}/repos/alice/project/pulls/{pull.number}/commits", **admin_token)
    assert whole["X-Total-Count"] == "1" and len(whole.json()) == 1
    services.submit_review(pull, actor=pull.repository.owner, event="COMMENT", body="first")
    services.submit_review(pull, actor=pull.repository.owner, event="COMMENT", body="second")
    reviews = f"{API}/repos/alice/project/pulls/{pull.number}/reviews"
    one, two = (client.get(reviews, {"page": page, "limit": 1}, **admin_token) for page in (1, 2))
    assert one["X-Total-Count"] == two["X-Total-Count"] == "2"
    assert [r["body"] for r in one.json() + two.json()] == ["first", "second"]


WEB_PAGES = ["0", "-1", "x", "", "1.5", HUGE, ENDLESS]


@pytest.mark.parametrize("page", WEB_PAGES)
def test_the_web_lists_answer_a_normal_page_for_any_page_number(page, pull, admin, bob):
    as_bob, as_admin = Client(), Client()
    as_bob.force_login(bob)
    as_admin.force_login(admin)
    for client, url in [
        (as_bob, "/pulls"),
        (as_bob, "/pulls?tab=mine"),
        (as_bob, "/alice/project/pulls"),
        (as_bob, "/notifications/"),
        (as_admin, "/-/admin/users"),
        (as_admin, "/-/admin/keys"),
        (as_admin, "/-/admin/audit"),
    ]:
        response = client.get(url, {"page": page})
        assert response.status_code == 200, (url, page)
    assert "Fix the parser" in as_bob.get("/pulls", {"tab": "mine", "page": page}).content.decode()


@pytest.mark.parametrize("page", WEB_PAGES)
def test_the_code_lists_answer_404_for_a_page_they_do_not_have(page, pull, bob):
    client = Client()
    client.force_login(bob)
    for url in ["/alice/project/commits/main", "/alice/project/tags"]:
        assert client.get(url, {"page": page}).status_code == 404, (url, page)
        assert client.get(url, {"page": "1"}).status_code == 200, url
