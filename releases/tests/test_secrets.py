"""Build variables and secrets: encrypted at rest, managed by admins and owners only, given to real builds of the
branches a repository names and never to a pull request from someone who cannot push, and never shown back."""

import base64
import hashlib
from urllib.parse import quote

import django_rq
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection

from portal import services as accounts
from portal.models import AuditEvent
from releases import secrets, services, variables
from releases.models import Build, BuildVariable
from releases.tests.test_builds import log_of, push_files
from repos import git
from repos import services as repo_services
from repos.models import Role
from repos.tests.api_client import send, token_for
from reviews import services as review_services
from reviews.tests.conftest import make_branch

SECRET = "p@ss w0rd/with:odd&chars-1f9a"
SECRET_SHA256 = hashlib.sha256(SECRET.encode()).hexdigest()

# Prints the secret as it is, base64- and URL-encoded (each must come out masked), and its sha256, which shows
# that the build saw the secret without printing it.
SHOW = """version: 0.2
env:
  variables:
    GREETING: from the buildspec
phases:
  build:
    commands:
      - echo "greeting=$GREETING"
      - echo "region=${REGION-unset}"
      - echo "plain $DEPLOY_TOKEN"
      - printf '%s' "$DEPLOY_TOKEN" | base64 -w0; echo
      - python3 -c 'import os, urllib.parse; print("url", urllib.parse.quote(os.environ.get("DEPLOY_TOKEN", ""), safe=""))'
      - echo "sha256=$(printf '%s' "$DEPLOY_TOKEN" | sha256sum | cut -d' ' -f1)"
      - echo "org-only=${ORG_TOKEN:+set}"
"""


def redis_contents() -> bytes:
    """Every key and value in the Redis the jobs use, as bytes (lists, hashes, sets and strings alike)."""
    redis = django_rq.get_connection("builds")
    found = []
    for key in redis.scan_iter():
        found.append(key)
        kind = redis.type(key)
        if kind == b"string":
            found.append(redis.get(key))
        elif kind == b"list":
            found += redis.lrange(key, 0, -1)
        elif kind == b"hash":
            for field, value in redis.hgetall(key).items():
                found += [field, value]
        elif kind == b"set":
            found += list(redis.smembers(key))
        elif kind == b"zset":
            found += [member for member, _ in redis.zrange(key, 0, -1, withscores=True)]
    return b"\n".join(found)


def assert_no_secret_in(data: bytes) -> None:
    for form in (SECRET, base64.b64encode(SECRET.encode()).decode(), quote(SECRET, safe="")):
        assert form.encode() not in data


@pytest.fixture
def org_repo(alice, bob, carol):
    """acme/tool: owned by the organization acme (alice owns it), bob writes and carol reads through teams."""
    org = accounts.create_organization(actor=alice, name="acme")
    devs = accounts.create_team(org, actor=alice, name="devs")
    accounts.add_team_member(devs, bob, actor=alice)
    readers = accounts.create_team(org, actor=alice, name="readers")
    accounts.add_team_member(readers, carol, actor=alice)
    repo = repo_services.create_repository(actor=alice, owner=org, name="tool", initialize=True)
    repo_services.set_team_role(repo, devs, actor=alice, role=Role.WRITE)
    repo_services.set_team_role(repo, readers, actor=alice, role=Role.READ)
    return repo


# Encryption at rest.


def test_a_secret_is_stored_encrypted_and_decrypts_back(private_repo, alice):
    row, created = variables.set_build_variable(
        actor=alice, repository=private_repo, name="DEPLOY_TOKEN", value=SECRET, secret=True
    )
    assert created
    with connection.cursor() as cursor:
        cursor.execute("SELECT value FROM releases_buildvariable WHERE id = %s", [row.pk])
        stored = cursor.fetchone()[0]
    assert SECRET not in stored and stored.startswith("gAAAAA")
    assert secrets.decrypt(stored) == SECRET
    # Two encryptions of one value differ (Fernet's random IV), so equal secrets do not show as equal rows.
    assert secrets.encrypt(SECRET) != secrets.encrypt(SECRET)


def test_after_a_key_rotation_secrets_decrypt_with_the_old_key_in_the_fallbacks(private_repo, alice, settings):
    row, _ = variables.set_build_variable(
        actor=alice, repository=private_repo, name="DEPLOY_TOKEN", value=SECRET, secret=True
    )
    old_key = settings.SECRET_KEY
    settings.SECRET_KEY = "a-new-key-" + "x" * 50
    settings.SECRET_KEY_FALLBACKS = []
    with pytest.raises(secrets.SecretUnreadable):
        secrets.decrypt(row.value)
    settings.SECRET_KEY_FALLBACKS = [old_key]
    assert secrets.decrypt(row.value) == SECRET
    # Saved again, it is encrypted under the new key, and the old key can go.
    row, created = variables.set_build_variable(
        actor=alice, repository=private_repo, name="deploy_token", value=SECRET, secret=True
    )
    assert not created and row.name == "DEPLOY_TOKEN"
    settings.SECRET_KEY_FALLBACKS = []
    assert secrets.decrypt(BuildVariable.objects.get(pk=row.pk).value) == SECRET


def test_the_key_is_derived_from_secret_key_not_secret_key_itself(settings):
    from cryptography.fernet import Fernet, InvalidToken

    raw = Fernet(base64.urlsafe_b64encode(hashlib.sha256(settings.SECRET_KEY.encode()).digest()))
    with pytest.raises(InvalidToken):
        raw.decrypt(secrets.encrypt(SECRET).encode())


# Names, values, who.


@pytest.mark.parametrize("name", ["1ST", "has-dash", "with space", "", "CODEBUILD_X", "codebuild_x", "é"])
def test_a_name_outside_githubs_rules_is_refused_naming_the_field(private_repo, alice, name):
    with pytest.raises(ValidationError) as refused:
        variables.set_build_variable(actor=alice, repository=private_repo, name=name, value="v", secret=False)
    assert refused.value.params["field"] == "name"
    assert not BuildVariable.objects.exists()


def test_names_are_unique_whatever_their_case_and_secrets_and_variables_are_apart(private_repo, alice):
    variables.set_build_variable(actor=alice, repository=private_repo, name="Region", value="eu", secret=False)
    row, created = variables.set_build_variable(
        actor=alice, repository=private_repo, name="REGION", value="us", secret=False
    )
    assert not created and (row.name, row.value) == ("Region", "us")
    _, created = variables.set_build_variable(
        actor=alice, repository=private_repo, name="region", value=SECRET, secret=True
    )
    assert created
    variables.set_build_variable(actor=alice, repository=private_repo, name="OTHER", value="x", secret=False)
    with pytest.raises(ValidationError) as refused:
        variables.set_build_variable(
            actor=alice, repository=private_repo, name="OTHER", value="x", secret=False, new_name="region"
        )
    assert refused.value.params["field"] == "name"


def test_a_value_is_required_and_at_most_48_kb(private_repo, alice):
    big = "x" * (48 * 1024)
    variables.set_build_variable(actor=alice, repository=private_repo, name="BIG", value=big, secret=True)
    for value in ("", big + "y", "é" * (24 * 1024 + 1)):
        with pytest.raises(ValidationError) as refused:
            variables.set_build_variable(actor=alice, repository=private_repo, name="BIG", value=value, secret=True)
        assert refused.value.params["field"] == "value"
    assert secrets.decrypt(BuildVariable.objects.get(name="BIG").value) == big


def test_only_repository_admins_and_organization_owners_manage_them(private_repo, org_repo, alice, bob, carol):
    org = org_repo.owner
    for person in (bob, carol):
        with pytest.raises(PermissionDenied):
            variables.set_build_variable(actor=person, repository=private_repo, name="A", value="v", secret=True)
        with pytest.raises(PermissionDenied):
            variables.set_build_variable(actor=person, organization=org, name="A", value="v", secret=True)
    row, _ = variables.set_build_variable(actor=alice, organization=org, name="A", value="v", secret=True)
    with pytest.raises(PermissionDenied):
        variables.delete_build_variable(row, actor=bob)
    variables.delete_build_variable(row, actor=alice)
    assert not BuildVariable.objects.exists()


def test_changes_are_audited_without_the_value(private_repo, alice):
    row, _ = variables.set_build_variable(
        actor=alice, repository=private_repo, name="DEPLOY_TOKEN", value=SECRET, secret=True
    )
    variables.set_build_variable(
        actor=alice, repository=private_repo, name="DEPLOY_TOKEN", value=SECRET + "2", secret=True
    )
    variables.delete_build_variable(row, actor=alice)
    events = AuditEvent.objects.filter(action__startswith="build_secret.").order_by("pk")
    assert [e.action for e in events] == ["build_secret.create", "build_secret.update", "build_secret.delete"]
    assert events[0].after == {"name": "DEPLOY_TOKEN", "place": "alice/project"}
    for event in events:
        assert SECRET not in repr((event.before, event.after, event.target_repr))
        assert row.value not in repr((event.before, event.after))


# What builds get.


def test_who_gets_secrets_for_tags_manual_builds_and_pull_requests(private_repo, alice, bob, carol):
    sha = make_branch(private_repo, "feature", {"buildspec.yml": SHOW.encode()})
    review_services.save_branch_protection(
        None, actor=alice, repository=private_repo, branch_pattern="main", require_pull_request=False
    )

    def build(**options) -> Build:
        options.setdefault("trigger", Build.Trigger.PUSH)
        options.setdefault("head_sha", sha)
        return Build(repository=private_repo, **options)

    withheld = variables.secrets_withheld_because
    assert withheld(build(ref="refs/heads/main", head_branch="main", initiator=bob)) is None
    assert withheld(build(ref="refs/heads/feature", head_branch="feature", initiator=bob)) == variables.WITHHELD_BRANCH
    assert withheld(build(ref="refs/tags/v1", initiator=alice)) == variables.WITHHELD_TAG
    main = {"head_sha": git.branch_sha(private_repo.path, "main"), "ref": "refs/heads/main", "head_branch": "main"}
    manual = main | {"trigger": Build.Trigger.MANUAL}
    assert withheld(build(initiator=bob, **manual)) is None
    assert withheld(build(initiator=carol, **manual)) == variables.WITHHELD_STARTER
    assert withheld(build(initiator=None, **manual)) == variables.WITHHELD_STARTER
    # A commit that is not on the allowed branch, built by hand under its name, gets nothing.
    assert withheld(build(initiator=bob, **manual | {"head_sha": sha})) == variables.WITHHELD_NOT_ON_BRANCH
    services.save_build_settings(private_repo, actor=alice, secret_branches="{main,feat*}")
    assert withheld(build(ref="refs/heads/feature", head_branch="feature", initiator=bob)) is None
    pr = review_services.open_pull_request(private_repo, actor=carol, title="Mine", base="main", head="feature")
    pull = {"trigger": Build.Trigger.PULL_REQUEST, "ref": "refs/pull/1/head", "head_branch": "feature"}
    assert withheld(build(pull_request=pr, initiator=carol, **pull)) == variables.WITHHELD_PULL_REQUEST
    # A writer moving a reader's pull request still builds the reader's proposal: no secrets either.
    assert withheld(build(pull_request=pr, initiator=bob, **pull)) == variables.WITHHELD_PULL_REQUEST


@pytest.mark.usefixtures("transactional_db")
def test_a_build_of_a_protected_branch_gets_the_secrets_masked_and_the_variables_in_order(
    org_repo,
    alice,
    bob,
    run_builds,
):
    org = org_repo.owner
    set_ = variables.set_build_variable
    set_(actor=alice, organization=org, name="REGION", value="org-region", secret=False)
    set_(actor=alice, organization=org, name="GREETING", value="from the organization", secret=False)
    set_(actor=alice, repository=org_repo, name="REGION", value="repo-region", secret=False)
    set_(actor=alice, organization=org, name="DEPLOY_TOKEN", value="the organization's token", secret=True)
    set_(actor=alice, organization=org, name="ORG_TOKEN", value="only the organization has it", secret=True)
    set_(actor=alice, repository=org_repo, name="DEPLOY_TOKEN", value=SECRET, secret=True)
    review_services.save_branch_protection(
        None, actor=alice, repository=org_repo, branch_pattern="main", require_pull_request=False
    )

    push_files(org_repo, bob, "main", {"buildspec.yml": SHOW.encode()})
    queued = redis_contents()
    assert queued and str(Build.objects.get().pk).encode() in queued
    assert_no_secret_in(queued)
    run_builds()

    build = Build.objects.get()
    assert build.build_status == "SUCCEEDED", log_of(build)
    assert build.secret_names == ["DEPLOY_TOKEN", "ORG_TOKEN"] and build.secrets_withheld == ""
    log = log_of(build)
    assert "[Container] Secrets given: DEPLOY_TOKEN, ORG_TOKEN" in log
    # The repository's secret overrides the organization's of the same name; the build saw it, masked.
    assert f"sha256={SECRET_SHA256}" in log
    assert "plain ***" in log and "url ***" in log and "org-only=set" in log
    assert_no_secret_in(log.encode())
    # The organization's variable < the repository's; both > the buildspec.
    assert "region=repo-region" in log and "region=org-region" not in log
    assert "greeting=from the organization" in log
    assert_no_secret_in(redis_contents())


@pytest.mark.usefixtures("transactional_db")
def test_a_build_of_a_branch_not_allowed_gets_no_secret_and_says_why(private_repo, alice, bob, run_builds):  # noqa: F811
    variables.set_build_variable(actor=alice, repository=private_repo, name="DEPLOY_TOKEN", value=SECRET, secret=True)
    services.save_build_settings(private_repo, actor=alice, secret_branches="release/*")
    push_files(private_repo, bob, "main", {"buildspec.yml": SHOW.encode()})
    run_builds()

    build = Build.objects.get()
    assert build.build_status == "SUCCEEDED"
    assert build.secret_names == [] and build.secrets_withheld == variables.WITHHELD_BRANCH
    log = log_of(build)
    assert f"[Container] Secrets withheld ({variables.WITHHELD_BRANCH}): DEPLOY_TOKEN" in log
    assert f"sha256={hashlib.sha256(b'').hexdigest()}" in log


@pytest.mark.usefixtures("transactional_db")
def test_a_readers_pull_request_gets_no_secrets_and_a_writers_from_an_allowed_branch_does(
    private_repo,
    alice,
    bob,
    carol,
    run_builds,
):
    variables.set_build_variable(actor=alice, repository=private_repo, name="DEPLOY_TOKEN", value=SECRET, secret=True)
    services.save_build_settings(private_repo, actor=alice, secret_branches="feature*")
    make_branch(private_repo, "feature-carol", {"buildspec.yml": SHOW.encode()})
    make_branch(private_repo, "feature-bob", {"buildspec.yml": SHOW.encode(), "other.txt": b"x\n"})
    by_reader = review_services.open_pull_request(
        private_repo, actor=carol, title="Reader's", base="main", head="feature-carol"
    )
    by_writer = review_services.open_pull_request(
        private_repo, actor=bob, title="Writer's", base="main", head="feature-bob"
    )
    assert_no_secret_in(redis_contents())
    run_builds()

    readers = Build.objects.get(pull_request=by_reader)
    assert readers.build_status == "SUCCEEDED"
    assert readers.secret_names == [] and readers.secrets_withheld == variables.WITHHELD_PULL_REQUEST
    log = log_of(readers)
    assert f"Secrets withheld ({variables.WITHHELD_PULL_REQUEST}): DEPLOY_TOKEN" in log
    assert f"sha256={hashlib.sha256(b'').hexdigest()}" in log

    writers = Build.objects.get(pull_request=by_writer)
    assert writers.build_status == "SUCCEEDED"
    assert writers.secret_names == ["DEPLOY_TOKEN"] and writers.secrets_withheld == ""
    assert f"sha256={SECRET_SHA256}" in log_of(writers)


# The API, in Gitea's shapes.


def test_the_api_sets_lists_and_deletes_secrets_without_ever_returning_them(client, private_repo, alice):
    path = "/repos/alice/project/actions/secrets"
    headers = token_for(alice)
    assert send(client, "PUT", f"{path}/DEPLOY_TOKEN", {"data": SECRET}, **headers).status_code == 201
    assert send(client, "PUT", f"{path}/deploy_token", {"data": SECRET + "2"}, **headers).status_code == 204
    listed = send(client, "GET", path, **headers)
    assert listed.status_code == 200
    assert [set(item) for item in listed.json()] == [{"name", "created_at"}]
    assert listed.json()[0]["name"] == "DEPLOY_TOKEN"
    assert secrets.decrypt(BuildVariable.objects.get().value) == SECRET + "2"
    assert SECRET.encode() not in listed.content
    document = client.get("/api/v1/openapi.json").json()
    assert "put" in document["paths"]["/api/v1/repos/{owner}/{repo}/actions/secrets/{secretname}"]
    assert send(client, "DELETE", f"{path}/DEPLOY_TOKEN", **headers).status_code == 204
    assert send(client, "DELETE", f"{path}/DEPLOY_TOKEN", **headers).status_code == 404
    assert not BuildVariable.objects.exists()


def test_the_api_refuses_unknown_fields_bad_names_and_big_values_naming_them(client, private_repo, alice):
    path = "/repos/alice/project/actions"
    headers = token_for(alice)
    refused = send(client, "PUT", f"{path}/secrets/TOKEN", {"data": "x", "visibility": "all"}, **headers)
    assert refused.status_code == 422 and "visibility" in refused.content.decode()
    refused = send(client, "PUT", f"{path}/secrets/CODEBUILD_TOKEN", {"data": "x"}, **headers)
    assert refused.status_code == 422 and "secretname" in refused.content.decode()
    refused = send(client, "PUT", f"{path}/secrets/TOKEN", {"data": "x" * (48 * 1024 + 1)}, **headers)
    assert refused.status_code == 422 and "data" in refused.content.decode()
    refused = send(client, "POST", f"{path}/variables/9LIVES", {"value": "x"}, **headers)
    assert refused.status_code == 422 and "variablename" in refused.content.decode()
    assert not BuildVariable.objects.exists()


def test_the_api_manages_variables_as_gitea_does(client, org_repo, alice):
    headers = token_for(alice, ("api", "read:repo", "write:repo", "read:org", "write:org"))
    repo_path, org_path = "/repos/acme/tool/actions/variables", "/orgs/acme/actions/variables"
    assert send(client, "POST", f"{repo_path}/REGION", {"value": "eu"}, **headers).status_code == 201
    assert send(client, "POST", f"{repo_path}/region", {"value": "us"}, **headers).status_code == 409
    assert send(client, "POST", f"{org_path}/REGION", {"value": "org"}, **headers).status_code == 201
    assert send(client, "PUT", f"{repo_path}/REGION", {"value": "us", "name": "ZONE"}, **headers).status_code == 204
    assert send(client, "PUT", f"{repo_path}/NOPE", {"value": "us"}, **headers).status_code == 404
    got = send(client, "GET", f"{repo_path}/zone", **headers).json()
    assert got == {"owner_id": 0, "repo_id": org_repo.pk, "name": "ZONE", "data": "us"}
    listed = send(client, "GET", org_path, **headers).json()
    assert listed == [{"owner_id": org_repo.owner.pk, "repo_id": 0, "name": "REGION", "data": "org"}]
    assert send(client, "DELETE", f"{org_path}/REGION", **headers).status_code == 204
    assert list(BuildVariable.objects.values_list("name", flat=True)) == ["ZONE"]


def test_the_api_lets_only_admins_and_owners_in(client, private_repo, org_repo, alice, bob, carol, mallory):
    variables.set_build_variable(actor=alice, repository=private_repo, name="TOKEN", value=SECRET, secret=True)
    scopes = ("api", "read:repo", "write:repo", "read:org", "write:org")
    for person, repo_status, org_status in ((bob, 403, 403), (carol, 403, 403), (mallory, 404, 404)):
        headers = token_for(person, scopes)
        assert send(client, "GET", "/repos/alice/project/actions/secrets", **headers).status_code == repo_status
        put = send(client, "PUT", "/repos/alice/project/actions/secrets/TOKEN", {"data": "mine"}, **headers)
        assert put.status_code == repo_status
        assert send(client, "GET", "/orgs/acme/actions/variables", **headers).status_code == org_status
    # A token without write:repo cannot change them, even alice's.
    read_only = token_for(alice, ("api", "read:repo"))
    put = send(client, "PUT", "/repos/alice/project/actions/secrets/TOKEN", {"data": "mine"}, **read_only)
    assert put.status_code == 403
    assert secrets.decrypt(BuildVariable.objects.get().value) == SECRET


# The pages.


def test_the_page_shows_names_and_variables_but_never_a_secret(client, private_repo, alice):
    client.force_login(alice)
    url = "/alice/project/settings/builds/secrets"
    response = client.post(url, {"kind": "secret", "name": "DEPLOY_TOKEN", "value": SECRET})
    assert response.status_code == 302 and response["Location"] == url
    client.post(url, {"kind": "variable", "name": "REGION", "value": "eu-west-1"})
    page = client.get(url)
    html = page.content.decode()
    assert page.status_code == 200
    assert "DEPLOY_TOKEN" in html and "REGION" in html and "eu-west-1" in html
    assert "Enter a new value to replace it" in html
    assert SECRET not in html and "p@ss" not in html
    assert 'href="/alice/project/settings/builds/secrets"' in html  # the settings nav
    # A refused secret comes back with its error, its name kept and its value left out.
    refused = client.post(url, {"kind": "secret", "name": "CODEBUILD_X", "value": SECRET})
    assert refused.status_code == 400
    assert "CODEBUILD_" in refused.content.decode() and SECRET not in refused.content.decode()
    assert secrets.decrypt(BuildVariable.objects.get(secret=True).value) == SECRET


def test_deleting_from_the_page_asks_first(client, private_repo, alice):
    variables.set_build_variable(actor=alice, repository=private_repo, name="TOKEN", value=SECRET, secret=True)
    client.force_login(alice)
    url = "/alice/project/settings/builds/secrets/secret/TOKEN/delete"
    asked = client.post(url)
    assert asked.status_code == 200 and "Delete the secret TOKEN?" in asked.content.decode()
    assert BuildVariable.objects.exists()
    done = client.post(url, {"confirmed": "1"})
    assert done.status_code == 302 and not BuildVariable.objects.exists()
    assert client.post(url, {"confirmed": "1"}).status_code == 404


def test_the_pages_let_only_admins_and_owners_in(client, private_repo, org_repo, alice, bob, carol, mallory):
    for person, repo_status, org_status in ((bob, 403, 403), (carol, 403, 403), (mallory, 404, 404)):
        client.force_login(person)
        assert client.get("/alice/project/settings/builds/secrets").status_code == repo_status
        posted = client.post("/alice/project/settings/builds/secrets", {"kind": "secret", "name": "A", "value": "v"})
        assert posted.status_code == repo_status
        assert client.get("/orgs/acme/settings/builds/secrets").status_code == org_status
    assert not BuildVariable.objects.exists()
    client.force_login(alice)
    page = client.get("/orgs/acme/settings/builds/secrets")
    assert page.status_code == 200 and "Secrets and variables" in page.content.decode()
    assert 'href="/orgs/acme/settings/builds/secrets"' in client.get("/orgs/acme/teams").content.decode()


@pytest.mark.usefixtures("transactional_db")
def test_a_secret_no_key_opens_any_more_is_left_out_and_the_log_says_so(private_repo, alice, bob, run_builds, settings):  # noqa: F811
    variables.set_build_variable(actor=alice, repository=private_repo, name="DEPLOY_TOKEN", value=SECRET, secret=True)
    services.save_build_settings(private_repo, actor=alice, secret_branches="main")
    settings.SECRET_KEY = "a-new-key-" + "y" * 50
    settings.SECRET_KEY_FALLBACKS = []
    push_files(private_repo, bob, "main", {"buildspec.yml": SHOW.encode()})
    run_builds()

    build = Build.objects.get()
    assert build.build_status == "SUCCEEDED" and build.secret_names == [] and build.secrets_withheld == ""
    log = log_of(build)
    assert "[Container] Warning: secret DEPLOY_TOKEN is not set:" in log
    assert "[Container] No secrets given: none could be decrypted" in log
