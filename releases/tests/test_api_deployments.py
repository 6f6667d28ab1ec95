"""The environments and deployments API in GitHub's shapes, over real builds that a real deploy worker deploys to
local targets."""

import asyncssh
import pytest
from django.test import Client

from portal import services as accounts
from portal.models import AuditEvent
from releases.models import Deployment, Environment
from releases.tests.deploying import release_files
from releases.tests.test_builds import push_files
from repos import services as repo_services
from repos.models import Role
from repos.tests.api_client import send, token_for

# Tests that run builds and deployments: their workers see what the test committed.
transactional = pytest.mark.usefixtures("transactional_db")
ENVIRONMENTS = "/repos/alice/project/environments"
DEPLOYMENTS = "/repos/alice/project/deployments"
ENVIRONMENT_FIELDS = {
    "id",
    "name",
    "url",
    "html_url",
    "created_at",
    "updated_at",
    "protection_rules",
    "deployment_branch_policy",
    "required_approvals",
    "prevent_self_review",
    "wait_timer",
    "deployment_config",
    "freeze_windows",
    "targets",
}
DEPLOYMENT_FIELDS = {
    "id",
    "url",
    "sha",
    "ref",
    "task",
    "environment",
    "original_environment",
    "description",
    "creator",
    "created_at",
    "updated_at",
    "statuses_url",
    "repository_url",
    "html_url",
    "artifact_digest",
    "build_id",
    "rollback_of",
    "automatic_rollback",
    "status",
    "message",
}


def fields(response) -> list[str]:
    assert response.status_code == 422, response.content
    return [error["field"] for error in response.json()["errors"]]


def host_key() -> str:
    return asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()


def local_targets(*names: str) -> list[dict]:
    return [{"name": name, "type": "local"} for name in names]


def test_an_admin_puts_an_environment_in_githubs_shape_and_changes_it(private_repo, alice, bob, carol, api, settings):
    key = host_key()
    body = {
        "wait_timer": 5,
        "prevent_self_review": False,
        "reviewers": [{"type": "User", "id": carol.pk}, {"type": "User", "id": bob.pk}],
        "required_approvals": 2,
        "deployment_branch_policy": {
            "protected_branches": False,
            "custom_branch_policies": True,
            "default_branch": True,
            "patterns": ["tag:v*"],
        },
        "deployment_config": {"type": "HOST_COUNT", "value": 1},
        "targets": [
            {"name": "web1", "type": "local", "health_check": "test -f index.html"},
            {"name": "web2", "type": "ssh", "host": "10.0.0.7", "port": 2222, "user": "deploy", "host_key": key},
        ],
        "freeze_windows": [{"cron": "0 18 * * 5", "duration_minutes": 60, "timezone": "Europe/Paris"}],
    }
    response = api("alice", "PUT", f"{ENVIRONMENTS}/staging", body)
    assert response.status_code == 200, response.content
    put = response.json()
    assert set(put) == ENVIRONMENT_FIELDS | {"new_deploy_keys"}
    [(name, public_line)] = put.pop("new_deploy_keys").items()
    assert name == "web2" and public_line.startswith("ssh-ed25519 ")
    environment = Environment.objects.get(repository=private_repo, name="staging")
    assert put["id"] == environment.pk and put["name"] == "staging"
    assert put["url"] == f"{settings.PORTAL_BASE_URL}/api/v1{ENVIRONMENTS}/staging"
    assert put["created_at"].endswith("Z") and put["updated_at"] >= put["created_at"]
    rules = {rule["type"]: rule for rule in put["protection_rules"]}
    assert set(rules) == {"required_reviewers", "wait_timer", "branch_policy"}
    assert rules["wait_timer"]["wait_timer"] == 5
    assert rules["required_reviewers"]["prevent_self_review"] is False
    assert [(r["type"], r["reviewer"]["login"]) for r in rules["required_reviewers"]["reviewers"]] == [
        ("User", "bob"),
        ("User", "carol"),
    ]
    assert put["deployment_branch_policy"] == {
        "protected_branches": False,
        "custom_branch_policies": True,
        "default_branch": True,
        "patterns": ["tag:v*"],
    }
    assert (put["required_approvals"], put["prevent_self_review"], put["wait_timer"]) == (2, False, 5)
    assert put["deployment_config"] == {"name": "HOST_COUNT 1", "type": "HOST_COUNT", "value": 1}
    assert put["freeze_windows"] == body["freeze_windows"]
    local, ssh = put["targets"]
    assert local == {
        "name": "web1",
        "type": "local",
        "host": None,
        "port": None,
        "user": None,
        "host_key": None,
        "host_key_fingerprint": None,
        "deploy_key": None,
        "health_check": "test -f index.html",
        "artifact_digest": None,
        "health": "healthy",
        "last_deployment_id": None,
    }
    assert (ssh["type"], ssh["host"], ssh["port"], ssh["user"]) == ("ssh", "10.0.0.7", 2222, "deploy")
    assert ssh["host_key"] == " ".join(key.split()[:2]) and ssh["host_key_fingerprint"].startswith("SHA256:")
    assert ssh["deploy_key"] == public_line
    # What GET answers is what PUT did; readers see it too.
    assert api("alice", "GET", f"{ENVIRONMENTS}/staging").json() == put
    assert api("alice", "GET", f"{ENVIRONMENTS}/STAGING").json() == put
    assert api("carol", "GET", f"{ENVIRONMENTS}/staging").json()["targets"] == put["targets"]

    # Settings left out keep their value; a target keeping its name keeps its deploy key.
    response = api("alice", "PUT", f"{ENVIRONMENTS}/staging", {"wait_timer": 0, "deployment_branch_policy": None})
    assert response.status_code == 200, response.content
    changed = response.json()
    assert changed["new_deploy_keys"] == {}
    assert [rule["type"] for rule in changed["protection_rules"]] == ["required_reviewers"]
    assert changed["deployment_branch_policy"] is None and changed["wait_timer"] == 0
    assert changed["targets"] == put["targets"] and changed["required_approvals"] == 2
    # A GET answer can be put back as it is.
    readback = {key: put[key] for key in ("prevent_self_review", "wait_timer", "deployment_config", "freeze_windows")}
    readback["targets"] = [
        {key: value for key, value in target.items() if key in ("name", "type", "host", "port", "user", "host_key")}
        for target in put["targets"]
    ]
    response = api("alice", "PUT", f"{ENVIRONMENTS}/staging", readback)
    assert response.status_code == 200, response.content
    assert response.json()["targets"][1]["deploy_key"] == public_line

    response = api("alice", "PUT", f"{ENVIRONMENTS}/dev", {"targets": local_targets("a")})
    assert response.status_code == 200
    listed = api("carol", "GET", ENVIRONMENTS).json()
    assert listed["total_count"] == 2 and [e["name"] for e in listed["environments"]] == ["staging", "dev"]
    assert AuditEvent.objects.filter(action="environment.update", actor=alice).count() == 2

    # Only admins change environments; outsiders do not learn that the repository exists.
    assert api("bob", "PUT", f"{ENVIRONMENTS}/staging", {"wait_timer": 1}).status_code == 403
    assert api("bob", "DELETE", f"{ENVIRONMENTS}/staging").status_code == 403
    for method, path in [
        ("GET", ENVIRONMENTS),
        ("GET", f"{ENVIRONMENTS}/staging"),
        ("PUT", f"{ENVIRONMENTS}/staging"),
        ("DELETE", f"{ENVIRONMENTS}/staging"),
    ]:
        assert api("mallory", method, path, {} if method == "PUT" else None).status_code == 404, (method, path)
    # A token that may only read cannot change one, even alice's.
    reading = token_for(alice, scopes=("api", "read:repo"))
    response = send(Client(), "PUT", f"{ENVIRONMENTS}/staging", {"wait_timer": 1}, **reading)
    assert response.status_code == 403 and "write:repo" in response.json()["message"]
    assert send(Client(), "GET", f"{ENVIRONMENTS}/staging", **reading).status_code == 200
    # The read-back put the wait timer back to 5; the refused calls asked for 1.
    assert Environment.objects.get(pk=environment.pk).wait_timer == 5

    assert api("alice", "DELETE", f"{ENVIRONMENTS}/staging").status_code == 204
    assert api("carol", "GET", f"{ENVIRONMENTS}/staging").status_code == 404
    assert api("alice", "DELETE", f"{ENVIRONMENTS}/staging").status_code == 404
    assert AuditEvent.objects.filter(action="environment.delete", actor=alice).exists()


def test_a_refused_environment_names_the_field_and_changes_nothing(private_repo, alice, api):
    path = f"{ENVIRONMENTS}/dev"
    assert api("alice", "PUT", path, {"targets": local_targets("a"), "wait_timer": 3}).status_code == 200
    before = api("alice", "GET", path).json()

    response = api("alice", "PUT", path, {"foo": 1, "wait_timer": 4})
    assert fields(response) == ["foo"] and "foo" in response.json()["message"]
    response = api("alice", "PUT", path, {"targets": [{"name": "a", "bogus": True}]})
    assert fields(response) == ["targets.0.bogus"] and "targets.0.bogus" in response.json()["message"]
    response = api("alice", "PUT", path, {"deployment_config": {"name": "AllAtOnce", "speed": 2}})
    assert fields(response) == ["deployment_config.speed"]
    for body, field in [
        ({"targets": [{"name": "a"}, {"name": "../etc"}]}, "targets.1.name"),
        ({"targets": [{"name": "a", "type": "local", "host": "example.com"}]}, "targets.0.host"),
        ({"targets": [{"name": "a", "type": "ssh", "host": "h", "port": 22, "user": "u"}]}, "targets.0.host_key"),
        ({"targets": [{"name": "a", "type": "ftp"}]}, "targets.0.type"),
        ({"targets": [{"name": "a"}, {"name": "A"}]}, "targets.1.name"),
        ({"deployment_config": {"name": "AllAtTheSameTime"}}, "deployment_config"),
        ({"deployment_config": {"type": "FLEET_PERCENT", "value": 100}}, "deployment_config"),
        ({"wait_timer": 50000}, "wait_timer"),
        ({"reviewers": [{"type": "User", "id": 999999}]}, "reviewers.0.id"),
        ({"required_approvals": 1}, "required_approvals"),
        (
            {"freeze_windows": [{"cron": "every friday", "duration_minutes": 60, "timezone": "UTC"}]},
            "freeze_windows.0.cron",
        ),
        (
            {"freeze_windows": [{"cron": "0 18 * * 5", "duration_minutes": 60, "timezone": "Mars/Olympus"}]},
            "freeze_windows.0.timezone",
        ),
        (
            {"deployment_branch_policy": {"protected_branches": False, "custom_branch_policies": False}},
            "deployment_branch_policy",
        ),
        (
            {
                "deployment_branch_policy": {
                    "protected_branches": True,
                    "custom_branch_policies": False,
                    "patterns": ["tag:v*"],
                }
            },
            "deployment_branch_policy.custom_branch_policies",
        ),
        (
            {"deployment_branch_policy": {"protected_branches": False, "custom_branch_policies": True}},
            "deployment_branch_policy.patterns",
        ),
        (
            {
                "deployment_branch_policy": {
                    "protected_branches": False,
                    "custom_branch_policies": True,
                    "patterns": ["v*"],
                }
            },
            "deployment_branch_policy.patterns.0",
        ),
        ({"deployment_branch_policy": {"protected_branches": True}}, "deployment_branch_policy.custom_branch_policies"),
    ]:
        response = api("alice", "PUT", path, body)
        named = fields(response)
        assert named == [field], (body, response.json())
        assert named[0] in response.json()["message"], (body, response.json())
    # An environment's name is one path component of its local targets' directories.
    assert fields(api("alice", "PUT", f"{ENVIRONMENTS}/..", {})) == ["name"]
    assert api("alice", "GET", path).json() == before
    assert Environment.objects.filter(repository=private_repo).count() == 1


def test_a_team_of_the_owning_organization_reviews_as_github_shows_it(alice, bob, settings):
    org = accounts.create_organization(actor=alice, name="acme")
    devs = accounts.create_team(org, actor=alice, name="devs", description="The developers")
    accounts.add_team_member(devs, bob, actor=alice)
    tool = repo_services.create_repository(actor=alice, owner=org, name="tool")
    repo_services.set_team_role(tool, devs, actor=alice, role=Role.READ)
    body = {"reviewers": [{"type": "Team", "id": devs.pk}], "prevent_self_review": True}
    response = send(Client(), "PUT", "/repos/acme/tool/environments/uat", body, **token_for(alice))
    assert response.status_code == 200, response.content
    [rule] = response.json()["protection_rules"]
    assert rule == {
        "type": "required_reviewers",
        "prevent_self_review": True,
        "reviewers": [
            {
                "type": "Team",
                "reviewer": {
                    "id": devs.pk,
                    "name": "devs",
                    "slug": "devs",
                    "description": "The developers",
                    "html_url": f"{settings.PORTAL_BASE_URL}/orgs/acme/teams/devs",
                },
            }
        ],
    }
    assert response.json()["required_approvals"] == 1


@transactional
def test_a_writer_deploys_through_the_api_and_the_worker_runs_it(
    private_repo, alice, bob, carol, api, built, run_deploys, settings
):
    build = built(private_repo, bob, release_files("v1"))
    body = {"targets": local_targets("a", "b"), "deployment_config": {"name": "AllAtOnce"}}
    assert api("alice", "PUT", f"{ENVIRONMENTS}/dev", body).status_code == 200
    assert api("alice", "PUT", f"{ENVIRONMENTS}/uat", {}).status_code == 200
    request = {"environment": "dev", "ref": "main", "description": "first"}

    # Readers do not deploy, a token that may only read neither; outsiders do not see the repository.
    response = api("carol", "POST", DEPLOYMENTS, request)
    assert response.status_code == 403 and "writers" in response.json()["message"]
    reading = token_for(bob, scopes=("api", "read:repo"))
    response = send(Client(), "POST", DEPLOYMENTS, request, **reading)
    assert response.status_code == 403 and "write:repo" in response.json()["message"]
    assert api("mallory", "POST", DEPLOYMENTS, request).status_code == 404
    assert api("mallory", "GET", DEPLOYMENTS).status_code == 404
    # Refusals name the field.
    other = push_files(private_repo, bob, "feature", {"README.md": b"not built\n"})
    for wrong, field in [
        ({"environment": "prod", "ref": "main"}, "environment"),
        ({"environment": "uat", "ref": "main"}, "environment"),
        ({"environment": "dev", "ref": "no-such-branch"}, "ref"),
        ({"environment": "dev", "ref": "refs/heads/no-such-branch"}, "ref"),
        ({"environment": "dev", "sha": other}, "sha"),
        ({"environment": "dev", "ref": "feature"}, "ref"),
        ({"environment": "dev"}, "ref"),
        ({"environment": "dev", "ref": "main", "sha": build.head_sha}, "ref"),
        ({"environment": "dev", "ref": "main", "colour": "blue"}, "colour"),
        ({"environment": "dev", "ref": "main", "auto_merge": True}, "auto_merge"),
        ({"environment": "dev", "ref": "main", "task": "deploy:migrations"}, "task"),
    ]:
        response = api("bob", "POST", DEPLOYMENTS, wrong)
        assert fields(response) == [field], (wrong, response.json())
    assert (
        "no successful build" in api("bob", "POST", DEPLOYMENTS, {"environment": "dev", "sha": other}).json()["message"]
    )
    assert "no targets" in api("bob", "POST", DEPLOYMENTS, {"environment": "uat", "ref": "main"}).json()["message"]
    assert not Deployment.objects.exists()

    # GitHub's clients send their usual fields off.
    response = api("bob", "POST", DEPLOYMENTS, request | {"auto_merge": False, "required_contexts": []})
    assert response.status_code == 201, response.content
    created = response.json()
    assert set(created) == DEPLOYMENT_FIELDS
    deployment = Deployment.objects.get()
    url = f"{settings.PORTAL_BASE_URL}/api/v1{DEPLOYMENTS}/{deployment.pk}"
    artifact = build.artifacts.get()
    assert {key: created[key] for key in ("id", "sha", "ref", "task", "environment", "description")} == {
        "id": deployment.pk,
        "sha": build.head_sha,
        "ref": "main",
        "task": "deploy",
        "environment": "dev",
        "description": "first",
    }
    assert (created["url"], created["statuses_url"]) == (url, f"{url}/statuses")
    assert created["artifact_digest"] == f"sha256:{artifact.sha256}" and created["build_id"] == build.pk
    assert api("carol", "GET", f"/repos/alice/project/actions/runs/{created['build_id']}").json()["head_sha"] == (
        build.head_sha
    )
    assert (created["rollback_of"], created["automatic_rollback"], created["status"]) == (None, False, "Queued")
    assert created["creator"]["login"] == "bob"
    assert created["html_url"] == f"{settings.PORTAL_BASE_URL}/alice/project/deployments/{deployment.pk}"
    assert created["created_at"].endswith("Z")
    # Statuses are the portal's own.
    response = api("bob", "POST", f"{DEPLOYMENTS}/{deployment.pk}/statuses", {"state": "success"})
    assert response.status_code == 405 and "cannot be posted" in response.json()["message"]
    assert api("mallory", "POST", f"{DEPLOYMENTS}/{deployment.pk}/statuses", {"state": "success"}).status_code == 404

    run_deploys()

    got = api("carol", "GET", f"{DEPLOYMENTS}/{deployment.pk}").json()
    assert (got["status"], got["message"]) == ("Succeeded", ""), got
    # The API's times are to the second, as Gitea's; the deployment's own record says that it ended after it began.
    assert got["updated_at"] >= got["created_at"]
    deployment.refresh_from_db()
    assert deployment.deploy_ended > deployment.created
    statuses = api("carol", "GET", f"{DEPLOYMENTS}/{deployment.pk}/statuses").json()
    assert [status["state"] for status in statuses] == ["success", "in_progress", "queued"]
    newest = statuses[0]
    assert newest["deployment_url"] == url and newest["url"] == f"{url}/statuses/{newest['id']}"
    assert newest["environment"] == "dev" and newest["log_url"] == created["html_url"]
    assert api("carol", "GET", f"{DEPLOYMENTS}/{deployment.pk}/statuses/{newest['id']}").json() == newest
    assert api("carol", "GET", f"{DEPLOYMENTS}/{deployment.pk}/statuses/{newest['id'] + 100}").status_code == 404

    dev = api("carol", "GET", f"{ENVIRONMENTS}/dev").json()
    assert [(t["name"], t["artifact_digest"], t["health"], t["last_deployment_id"]) for t in dev["targets"]] == [
        ("a", created["artifact_digest"], "healthy", deployment.pk),
        ("b", created["artifact_digest"], "healthy", deployment.pk),
    ]
    assert api("carol", "GET", f"{DEPLOYMENTS}/{deployment.pk + 100}").status_code == 404


@transactional
def test_deployments_are_listed_newest_first_filtered_paged_and_rolled_back(
    private_repo, alice, bob, api, built, run_deploys, settings
):
    assert api("alice", "PUT", f"{ENVIRONMENTS}/dev", {"targets": local_targets("a")}).status_code == 200
    first_build = built(private_repo, bob, release_files("v1"))
    first = api("bob", "POST", DEPLOYMENTS, {"environment": "dev", "sha": first_build.head_sha[:10]}).json()
    run_deploys()
    # Nothing succeeded before the first deployment: there is nothing to go back to.
    response = api("bob", "POST", f"{DEPLOYMENTS}/{first['id']}/rollback")
    assert response.status_code == 422 and "nothing to roll back to" in response.json()["message"]
    second_build = built(private_repo, bob, release_files("v2"))
    second = api("bob", "POST", DEPLOYMENTS, {"environment": "dev", "ref": "refs/heads/main"}).json()
    assert second["sha"] == second_build.head_sha and second["ref"] == "main"
    run_deploys()
    assert api("bob", "GET", f"{DEPLOYMENTS}/{second['id']}").json()["status"] == "Succeeded"
    # The first one's status goes inactive once a later one succeeded.
    assert [s["state"] for s in api("bob", "GET", f"{DEPLOYMENTS}/{first['id']}/statuses").json()][:2] == [
        "inactive",
        "success",
    ]

    assert api("carol", "POST", f"{DEPLOYMENTS}/{second['id']}/rollback").status_code == 403
    response = api("bob", "POST", f"{DEPLOYMENTS}/{second['id']}/rollback")
    assert response.status_code == 201, response.content
    rollback = response.json()
    assert rollback["id"] not in (first["id"], second["id"]) and rollback["rollback_of"] == second["id"]
    assert (rollback["artifact_digest"], rollback["build_id"], rollback["sha"]) == (
        first["artifact_digest"],
        first_build.pk,
        first_build.head_sha,
    )
    assert rollback["automatic_rollback"] is False and rollback["creator"]["login"] == "bob"
    run_deploys()
    assert api("bob", "GET", f"{DEPLOYMENTS}/{rollback['id']}").json()["status"] == "Succeeded"
    [target] = api("carol", "GET", f"{ENVIRONMENTS}/dev").json()["targets"]
    assert (target["artifact_digest"], target["last_deployment_id"]) == (first["artifact_digest"], rollback["id"])

    def ids(query: str = "") -> list[int]:
        response = api("carol", "GET", f"{DEPLOYMENTS}{query}")
        assert response.status_code == 200, (query, response.content)
        return [deployment["id"] for deployment in response.json()]

    everything = [rollback["id"], second["id"], first["id"]]
    for query, expected in [
        ("", everything),
        ("?environment=dev", everything),
        ("?environment=DEV", everything),
        ("?environment=uat", []),
        (f"?sha={first_build.head_sha}", [rollback["id"], first["id"]]),
        (f"?sha={second_build.head_sha}", [second["id"]]),
        ("?ref=main", everything),
        ("?ref=refs/heads/main", everything),
        ("?ref=feature", []),
        ("?task=deploy", everything),
        ("?task=migrate", []),
    ]:
        assert ids(query) == expected, query
    response = api("carol", "GET", f"{DEPLOYMENTS}?per_page=1")
    assert [d["id"] for d in response.json()] == [rollback["id"]] and response["X-Total-Count"] == "3"
    assert f'<{settings.PORTAL_BASE_URL}/api/v1{DEPLOYMENTS}?per_page=1&page=2>; rel="next"' in response["Link"]
    assert ids("?per_page=1&page=2") == [second["id"]]
    assert ids("?per_page=2&page=3") == []
    assert "Link" not in api("carol", "GET", DEPLOYMENTS)
    assert fields(api("carol", "GET", f"{DEPLOYMENTS}?per_page=101")) == ["query.per_page"]


@transactional
def test_reviewers_approve_or_reject_through_the_api_and_writers_stop(
    private_repo, alice, bob, carol, api, built, run_deploys
):
    built(private_repo, bob, release_files("v1"))
    body = {"targets": local_targets("a"), "reviewers": [{"type": "User", "id": carol.pk}]}
    assert api("alice", "PUT", f"{ENVIRONMENTS}/dev", body).json()["required_approvals"] == 1
    request = {"environment": "dev", "ref": "main"}

    approved = api("bob", "POST", DEPLOYMENTS, request).json()
    assert approved["status"] == "Waiting" and "review" in approved["message"]
    assert [s["state"] for s in api("bob", "GET", f"{DEPLOYMENTS}/{approved['id']}/statuses").json()] == ["waiting"]
    # Only the environment's reviewers review, and only as they say.
    response = api("bob", "POST", f"{DEPLOYMENTS}/{approved['id']}/reviews", {"state": "approved"})
    assert response.status_code == 403 and "reviewers" in response.json()["message"]
    response = api("carol", "POST", f"{DEPLOYMENTS}/{approved['id']}/reviews", {"state": "fine"})
    assert fields(response) == ["state"]
    assert api("mallory", "POST", f"{DEPLOYMENTS}/{approved['id']}/reviews", {"state": "approved"}).status_code == 404
    response = api("carol", "POST", f"{DEPLOYMENTS}/{approved['id']}/reviews", {"state": "approved", "comment": "ok"})
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "Queued"
    response = api("carol", "POST", f"{DEPLOYMENTS}/{approved['id']}/reviews", {"state": "rejected"})
    assert fields(response) == ["state"] and "waiting" in response.json()["message"]

    rejected = api("bob", "POST", DEPLOYMENTS, request).json()
    response = api("carol", "POST", f"{DEPLOYMENTS}/{rejected['id']}/reviews", {"state": "rejected", "comment": "no"})
    got = response.json()
    assert (got["status"], got["message"]) == ("Failed", "Rejected by carol: no")

    stopped = api("bob", "POST", DEPLOYMENTS, request).json()
    assert api("carol", "POST", f"{DEPLOYMENTS}/{stopped['id']}/stop").status_code == 403
    response = api("bob", "POST", f"{DEPLOYMENTS}/{stopped['id']}/stop")
    assert response.status_code == 202 and response.json()["status"] == "Stopped"
    response = api("bob", "POST", f"{DEPLOYMENTS}/{stopped['id']}/stop")
    assert response.status_code == 409 and "already ended" in response.json()["message"]
    assert [s["state"] for s in api("bob", "GET", f"{DEPLOYMENTS}/{stopped['id']}/statuses").json()] == [
        "error",
        "waiting",
    ]
    assert AuditEvent.objects.filter(action="deployment.approved", actor=carol).exists()

    run_deploys()
    assert api("bob", "GET", f"{DEPLOYMENTS}/{approved['id']}").json()["status"] == "Succeeded"
    assert [d["status"] for d in api("bob", "GET", DEPLOYMENTS).json()] == ["Stopped", "Failed", "Succeeded"]


@transactional
def test_a_failed_deployment_shows_the_portals_automatic_rollback(private_repo, alice, bob, api, built, run_deploys):
    assert api("alice", "PUT", f"{ENVIRONMENTS}/dev", {"targets": local_targets("a")}).status_code == 200
    built(private_repo, bob, release_files("v1"))
    good = api("bob", "POST", DEPLOYMENTS, {"environment": "dev", "ref": "main"}).json()
    run_deploys()
    built(private_repo, bob, release_files("v2", fail={"ValidateService": "exit 1"}))
    bad = api("bob", "POST", DEPLOYMENTS, {"environment": "dev", "ref": "main"}).json()
    run_deploys()

    rollback, failed, first = api("carol", "GET", DEPLOYMENTS).json()
    assert (failed["id"], failed["status"], first["id"]) == (bad["id"], "Failed", good["id"])
    assert "1 failed" in failed["message"]
    assert (rollback["rollback_of"], rollback["automatic_rollback"], rollback["creator"]) == (bad["id"], True, None)
    assert (rollback["artifact_digest"], rollback["status"]) == (good["artifact_digest"], "Succeeded")
    assert [s["state"] for s in api("carol", "GET", f"{DEPLOYMENTS}/{bad['id']}/statuses").json()][0] == "failure"
    assert api("carol", "GET", f"{DEPLOYMENTS}?sha={good['sha']}").json() == [rollback, first]
    [target] = api("carol", "GET", f"{ENVIRONMENTS}/dev").json()["targets"]
    assert (target["artifact_digest"], target["last_deployment_id"]) == (good["artifact_digest"], rollback["id"])
