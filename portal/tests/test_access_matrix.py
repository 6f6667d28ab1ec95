"""The authorization matrix: every route of the URL table and of the API schema, and both git
transports (smart HTTP and SSH), asked by {anonymous, outsider, reader, writer, admin} about a private repository,
and smart HTTP asked with a repository read token.

A route without an entry in the tables below fails test_every_route_has_a_policy, so a new route
cannot ship without saying who may use it."""

import base64
import json
import shlex
import subprocess
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import asyncssh
import pytest
from allauth.usersessions.models import UserSession
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from portal import services as accounts
from portal.tests.api_schema import api_operations
from repos import git
from repos import services as repo_services
from repos.models import RepositoryMaintenance, Role

PEOPLE = ("anonymous", "outsider", "reader", "writer", "admin")
# Who each column is: alice owns alice/project, bob writes, carol reads, mallory has no access.
WHO = {"outsider": "mallory", "reader": "carol", "writer": "bob", "admin": "alice"}
RANK = {"reader": Role.READ, "writer": Role.WRITE, "admin": Role.ADMIN}

# Policies.
PUBLIC = "public"  # anyone
LOGIN = "login"  # anyone signed in; anonymous is sent to the login page
SITE_ADMIN = "site-admin"  # site administrators only; everyone else gets 404
ORG_MEMBER = "org-member"  # members of the organization see it; outsiders get 404
ORG_OWNER = "org-owner"  # owners change it; members get 403; outsiders 404
HOOK = "hook"  # git hooks only, through serve's unix socket with the per-push secret: over TCP nobody finds it
PASSWORD = "password"  # HTTP Basic with the account's password only: a token is not enough
HIDDEN = "hidden"  # nobody
# A forged signed link of a private repository: sign in first; outsiders get 404, whoever reads it a 403 saying why.
FORGED_LINK = "forged-link"


def repo(need: Role) -> str:
    return f"repo-{need.label}"


@dataclass(frozen=True)
class Case:
    policy: str
    method: str = "GET"
    kwargs: dict = field(default_factory=dict)
    # For an unnamed route, the URL to ask.
    url: str = ""


R = {"owner": "alice", "name": "project"}
# acme/tool gives the same people the same roles through the organization's teams.
T = {"owner": "acme", "name": "tool"}
ORG = {"org": "acme"}
P = R | {"number": 1}
RH = R | {"hook_id": "@hook"}
B = R | {"number": 1}
OH = ORG | {"hook_id": "@org_hook"}
D = R | {"deployment_id": "@deployment"}
E = R | {"environment": "dev"}
X = R | {"pipeline": "waiting", "number": 1}
PL = R | {"pipeline": "release"}
PX = PL | {"number": 1}
PS = PL | {"stage": "Deploy-dev"}

# Every named web route. Third-party routes (django-allauth's account pages, the API's own
# router, which is checked from its schema below) are covered by their own test suites.
WEB_ROUTES: dict[str, list[Case]] = {
    "portal:home": [Case(PUBLIC)],
    "portal:favicon": [Case(PUBLIC)],
    "portal:avatar": [Case(PUBLIC, kwargs={"username": "alice"})],
    "portal:health": [Case(PUBLIC)],
    # A forged link shows everyone the same "this invitation does not work" page.
    "portal:accept_invitation": [Case(PUBLIC, kwargs={"token": "not-a-token"})],
    "portal:admin_invitations": [Case(SITE_ADMIN), Case(SITE_ADMIN, "POST")],
    "portal:admin_invitation_revoke": [Case(SITE_ADMIN, "POST", {"invitation_id": "@invitation"})],
    "portal:settings": [Case(LOGIN)],
    "portal:settings_profile": [Case(LOGIN), Case(LOGIN, "POST")],
    "portal:settings_keys": [Case(LOGIN), Case(LOGIN, "POST")],
    "portal:settings_key_delete": [Case(LOGIN, "POST", {"key_id": "@own_key"})],
    "portal:settings_tokens": [Case(LOGIN), Case(LOGIN, "POST")],
    "portal:settings_token_revoke": [Case(LOGIN, "POST", {"token_id": "@own_token"})],
    "portal:settings_session_revoke": [Case(LOGIN, "POST", {"session_id": "@own_session"})],
    "portal:settings_security": [Case(LOGIN)],
    "repos:users_suggest": [Case(LOGIN)],
    "portal:admin": [Case(SITE_ADMIN)],
    "portal:admin_users": [Case(SITE_ADMIN)],
    "portal:admin_user_create": [Case(SITE_ADMIN), Case(SITE_ADMIN, "POST")],
    "portal:admin_user_active": [Case(SITE_ADMIN, "POST", {"username": "carol"})],
    "portal:admin_user_admin": [Case(SITE_ADMIN, "POST", {"username": "carol"})],
    "portal:admin_keys": [Case(SITE_ADMIN), Case(SITE_ADMIN, "POST")],
    # Without confirmed=1 these answer with the confirmation page and change nothing.
    "portal:admin_key_remove": [Case(SITE_ADMIN, "POST", {"key_id": "@carol_key"})],
    "portal:admin_key_revoke": [Case(SITE_ADMIN, "POST", {"key_id": "@carol_key"})],
    "portal:admin_key_lift": [Case(SITE_ADMIN, "POST", {"revocation_id": "@revocation"})],
    "portal:admin_audit": [Case(SITE_ADMIN)],
    "portal:admin_settings": [Case(SITE_ADMIN), Case(SITE_ADMIN, "POST")],
    "portal:admin_jobs": [Case(SITE_ADMIN)],
    "portal:admin_job_requeue": [Case(SITE_ADMIN, "POST", {"kind": "@job_kind", "row_id": "@job_row"})],
    "portal:admin_job_cancel": [Case(SITE_ADMIN, "POST", {"kind": "@job_kind", "row_id": "@job_row"})],
    "orgs:new": [Case(LOGIN), Case(LOGIN, "POST")],
    "orgs:teams": [Case(ORG_MEMBER, kwargs=ORG)],
    "orgs:new_team": [Case(ORG_OWNER, kwargs=ORG), Case(ORG_OWNER, "POST", ORG)],
    "orgs:team": [Case(ORG_MEMBER, kwargs=ORG | {"team": "devs"})],
    "orgs:member_add": [Case(ORG_OWNER, "POST", ORG | {"team": "devs"})],
    "orgs:member_remove": [Case(ORG_OWNER, "POST", ORG | {"team": "devs", "username": "bob"})],
    "repos:new": [Case(LOGIN), Case(LOGIN, "POST")],
    "repos:owner": [Case(PUBLIC, kwargs={"owner": "alice"})],
    "repos:detail": [Case(repo(Role.READ), kwargs=R)],
    "browse:tree": [Case(repo(Role.READ), kwargs=R | {"rest": "main"}), Case(repo(Role.READ), url="@tree_commits")],
    "browse:blob": [Case(repo(Role.READ), kwargs=R | {"rest": "main/README.md"})],
    "browse:raw": [Case(repo(Role.READ), kwargs=R | {"rest": "main/README.md"})],
    "browse:blame": [Case(repo(Role.READ), kwargs=R | {"rest": "main/README.md"})],
    "browse:commits": [Case(repo(Role.READ), kwargs=R), Case(repo(Role.READ), kwargs=R | {"rest": "main/README.md"})],
    "browse:commit": [
        Case(repo(Role.READ), kwargs=R | {"sha": "@main_sha"}),
        Case(repo(Role.READ), url="@commit_batch"),
    ],
    "browse:compare": [Case(repo(Role.READ), kwargs=R | {"spec": "main...main"})],
    "browse:compare_pick": [Case(repo(Role.READ), kwargs=R)],
    # Moves to the address without the slash before anything is looked up; the target then applies its own policy.
    "repos:without_trailing_slash": [Case(PUBLIC, url="/alice/project/"), Case(PUBLIC, url="/alice/project/pulls/")],
    "browse:ref_menu": [Case(repo(Role.READ), kwargs=R)],
    "browse:branches": [Case(repo(Role.READ), kwargs=R)],
    "browse:tags": [Case(repo(Role.READ), kwargs=R)],
    "browse:archive": [
        Case(repo(Role.READ), kwargs=R | {"rest": "main.tar.gz"}),
        Case(repo(Role.READ), kwargs=R | {"rest": "main.zip"}),
    ],
    "repos:settings": [Case(repo(Role.ADMIN), kwargs=R), Case(repo(Role.ADMIN), "POST", R)],
    "repos:rename": [Case(repo(Role.ADMIN), "POST", R)],
    "repos:transfer": [Case(repo(Role.ADMIN), "POST", R)],
    "repos:delete": [Case(repo(Role.ADMIN), "POST", R)],
    "repos:collaborators": [Case(repo(Role.ADMIN), kwargs=R), Case(repo(Role.ADMIN), "POST", R)],
    "repos:collaborator_role": [Case(repo(Role.ADMIN), "POST", R | {"username": "carol"})],
    "repos:collaborator_remove": [Case(repo(Role.ADMIN), "POST", R | {"username": "mallory"})],
    "repos:team_add": [Case(repo(Role.ADMIN), "POST", T)],
    "repos:team_role": [Case(repo(Role.ADMIN), "POST", T | {"team": "devs"})],
    "repos:team_remove": [Case(repo(Role.ADMIN), "POST", T | {"team": "ops"})],
    "repos:deploy_keys": [Case(repo(Role.ADMIN), kwargs=R), Case(repo(Role.ADMIN), "POST", R)],
    "repos:deploy_key_remove": [Case(repo(Role.ADMIN), "POST", R | {"key_id": "@deploy_key"})],
    "reviews:dashboard": [Case(LOGIN)],
    "reviews:list": [Case(repo(Role.READ), kwargs=R)],
    "reviews:new": [Case(repo(Role.READ), kwargs=R), Case(repo(Role.READ), "POST", R)],
    "reviews:detail": [Case(repo(Role.READ), kwargs=P)],
    "reviews:commits": [Case(repo(Role.READ), kwargs=P)],
    "reviews:files": [Case(repo(Role.READ), kwargs=P)],
    "reviews:files_fragment": [Case(repo(Role.READ), url="@pull_batch")],
    "reviews:statuses": [Case(repo(Role.READ), kwargs=R | {"sha": "@head_sha"})],
    "reviews:statuses_batch": [Case(repo(Role.READ), kwargs=R)],
    # Readers comment and review; the author or a writer edits, closes and asks for reviewers.
    "reviews:comment_add": [Case(repo(Role.READ), "POST", P)],
    "reviews:comment_edit": [Case(repo(Role.READ), "POST", P | {"comment_id": "@comment"})],
    "reviews:review": [Case(repo(Role.READ), "POST", P)],
    "reviews:edit": [Case(repo(Role.WRITE), "POST", P)],
    "reviews:reviewers": [Case(repo(Role.WRITE), "POST", P)],
    "reviews:comment_resolve": [Case(repo(Role.WRITE), "POST", P | {"comment_id": "@comment"})],
    "reviews:comment_apply": [Case(repo(Role.WRITE), "POST", P | {"comment_id": "@comment"})],
    "reviews:merge": [Case(repo(Role.WRITE), "POST", P)],
    "reviews:override": [Case(repo(Role.ADMIN), "POST", P)],
    "reviews:dismiss": [Case(repo(Role.MAINTAIN), "POST", P | {"review_id": "@review"})],
    "reviews:close": [Case(repo(Role.WRITE), "POST", P)],
    "reviews:reopen": [Case(repo(Role.WRITE), "POST", P)],
    "reviews:delete_branch": [Case(repo(Role.WRITE), "POST", P)],
    # Last of the pull request's routes: it deletes the thread for the admin.
    "reviews:comment_delete": [Case(repo(Role.MAINTAIN), "POST", P | {"comment_id": "@comment"})],
    "review_settings:branches": [Case(repo(Role.ADMIN), kwargs=R), Case(repo(Role.ADMIN), "POST", R)],
    "review_settings:branch": [
        Case(repo(Role.ADMIN), kwargs=R | {"protection_id": "@protection"}),
        Case(repo(Role.ADMIN), "POST", R | {"protection_id": "@protection"}),
    ],
    "review_settings:rules": [Case(repo(Role.ADMIN), kwargs=R), Case(repo(Role.ADMIN), "POST", R)],
    "review_settings:rule": [
        Case(repo(Role.ADMIN), kwargs=R | {"rule_id": "@rule"}),
        Case(repo(Role.ADMIN), "POST", R | {"rule_id": "@rule"}),
    ],
    "review_settings:merging": [Case(repo(Role.ADMIN), kwargs=R), Case(repo(Role.ADMIN), "POST", R)],
    "review_settings:org_rules": [Case(ORG_OWNER, kwargs=ORG), Case(ORG_OWNER, "POST", ORG)],
    "review_settings:org_rule": [
        Case(ORG_OWNER, kwargs=ORG | {"rule_id": "@template"}),
        Case(ORG_OWNER, "POST", ORG | {"rule_id": "@template"}),
    ],
    "review_settings:branch_delete": [Case(repo(Role.ADMIN), "POST", R | {"protection_id": "@protection"})],
    "review_settings:rule_delete": [Case(repo(Role.ADMIN), "POST", R | {"rule_id": "@rule"})],
    "review_settings:org_rule_delete": [Case(ORG_OWNER, "POST", ORG | {"rule_id": "@template"})],
    "webhooks:hooks": [Case(repo(Role.ADMIN), kwargs=R), Case(repo(Role.ADMIN), "POST", R)],
    "webhooks:hook": [Case(repo(Role.ADMIN), kwargs=RH), Case(repo(Role.ADMIN), "POST", RH)],
    "webhooks:hook_test": [Case(repo(Role.ADMIN), "POST", RH)],
    "webhooks:delivery": [Case(repo(Role.ADMIN), kwargs=RH | {"delivery_id": "@delivery"})],
    "webhooks:redeliver": [Case(repo(Role.ADMIN), "POST", RH | {"delivery_id": "@delivery"})],
    # Without confirmed=1 this answers with the confirmation page and deletes nothing.
    "webhooks:hook_delete": [Case(repo(Role.ADMIN), "POST", RH)],
    "webhooks:org_hooks": [Case(ORG_OWNER, kwargs=ORG), Case(ORG_OWNER, "POST", ORG)],
    "webhooks:org_hook": [Case(ORG_OWNER, kwargs=OH), Case(ORG_OWNER, "POST", OH)],
    "webhooks:org_hook_test": [Case(ORG_OWNER, "POST", OH)],
    "webhooks:org_delivery": [Case(ORG_OWNER, kwargs=OH | {"delivery_id": "@org_delivery"})],
    "webhooks:org_redeliver": [Case(ORG_OWNER, "POST", OH | {"delivery_id": "@org_delivery"})],
    "webhooks:org_hook_delete": [Case(ORG_OWNER, "POST", OH)],
    # Deleting answers with the confirmation page without confirmed=1 (and 404 for a name that is not there).
    "build_secrets:repo": [Case(repo(Role.ADMIN), kwargs=R), Case(repo(Role.ADMIN), "POST", R)],
    "build_secrets:repo_delete": [Case(repo(Role.ADMIN), "POST", R | {"kind": "secret", "variable": "@secret"})],
    "build_secrets:org": [Case(ORG_OWNER, kwargs=ORG), Case(ORG_OWNER, "POST", ORG)],
    "build_secrets:org_delete": [Case(ORG_OWNER, "POST", ORG | {"kind": "variable", "variable": "@org_variable"})],
    # Builds: #1 ended with an artifact (signed), #2 queued; a writer's stop ends #2, a rerun queues #3.
    "builds:list": [Case(repo(Role.READ), kwargs=R)],
    "builds:badge": [Case(repo(Role.READ), kwargs=R)],
    "builds:detail": [Case(repo(Role.READ), kwargs=B)],
    "builds:log": [Case(repo(Role.READ), kwargs=B)],
    "builds:log_text": [Case(repo(Role.READ), kwargs=B)],
    "builds:artifact": [Case(repo(Role.READ), kwargs=B | {"artifact_id": "@artifact", "filename": "app"})],
    "builds:provenance": [Case(repo(Role.READ), kwargs=B | {"artifact_id": "@artifact"})],
    "builds:run": [Case(repo(Role.WRITE), "POST", R)],
    "builds:stop": [Case(repo(Role.WRITE), "POST", R | {"number": 2})],
    "builds:rerun": [Case(repo(Role.WRITE), "POST", B)],
    "builds:settings": [Case(repo(Role.ADMIN), kwargs=R), Case(repo(Role.ADMIN), "POST", R)],
    # Deployments: #@deployment waits for its reviewers (carol, bob, alice and the site admin) in dev, with a target
    # a; a post without a state is a refused review, an early start leaves it waiting for review, a writer's stop
    # ends it, and a roll back finds nothing to go back to.
    "deployments:environments": [Case(repo(Role.READ), kwargs=R)],
    # Pipelines: execution 1 of release waits at an approval any writer answers; a post without an answer is refused.
    "builds:pipeline_approval": [Case(repo(Role.READ), kwargs=X), Case(repo(Role.READ), "POST", X)],
    "builds:pipeline_approval_link": [Case(FORGED_LINK, kwargs=X | {"token": "not-a-token"})],
    "deployments:history": [Case(repo(Role.READ), kwargs=R | {"environment": "dev"})],
    "deployments:detail": [Case(repo(Role.READ), kwargs=D)],
    "deployments:log": [Case(repo(Role.READ), kwargs=D)],
    "deployments:target_log": [Case(repo(Role.READ), kwargs=D | {"target": "a"})],
    "deployments:review": [Case(repo(Role.READ), "POST", D)],
    "deployments:override": [Case(repo(Role.ADMIN), "POST", D)],
    "deployments:stop": [Case(repo(Role.WRITE), "POST", D)],
    "deployments:roll_back": [Case(repo(Role.WRITE), "POST", D)],
    "deployments:deploy": [Case(repo(Role.WRITE), "POST", B)],
    "deployments:settings": [Case(repo(Role.ADMIN), kwargs=R), Case(repo(Role.ADMIN), "POST", R)],
    "deployments:settings_environment": [Case(repo(Role.ADMIN), kwargs=E), Case(repo(Role.ADMIN), "POST", E)],
    "deployments:settings_variable": [Case(repo(Role.ADMIN), "POST", E)],
    "deployments:settings_variable_delete": [
        Case(repo(Role.ADMIN), "POST", E | {"kind": "secret", "variable": "@environment_secret"})
    ],
    # Without confirmed=1 this answers with the confirmation page and deletes nothing.
    "deployments:settings_delete": [Case(repo(Role.ADMIN), "POST", E)],
    # Pipelines: release runs execution 1 of the branch pipelined, in its Build stage.
    "pipelines:list": [Case(repo(Role.READ), kwargs=R)],
    "pipelines:detail": [Case(repo(Role.READ), kwargs=PL)],
    "pipelines:state": [Case(repo(Role.READ), kwargs=PL)],
    "pipelines:executions": [Case(repo(Role.READ), kwargs=PL)],
    "pipelines:execution": [Case(repo(Role.READ), kwargs=PX)],
    "pipelines:release": [Case(repo(Role.READ), kwargs=PX)],
    "pipelines:release_json": [Case(repo(Role.READ), kwargs=PX)],
    "pipelines:start": [Case(repo(Role.WRITE), "POST", PL)],
    "pipelines:transition": [Case(repo(Role.WRITE), "POST", PS)],
    "pipelines:rollback": [Case(repo(Role.WRITE), "POST", PS)],
    "pipelines:stop": [Case(repo(Role.WRITE), "POST", PX)],
    "pipelines:retry": [Case(repo(Role.WRITE), "POST", PX)],
    "notifications:list": [Case(LOGIN)],
    "notifications:read": [Case(LOGIN, "POST", {"notification_id": "@own_notification"})],
    "notifications:read_all": [Case(LOGIN, "POST")],
    "notifications:settings": [Case(LOGIN), Case(LOGIN, "POST")],
    "api:api-root": [Case(HIDDEN)],
    "api:openapi-json": [Case(PUBLIC)],
    "api:openapi-view": [Case(PUBLIC)],
    "api-docs-asset": [Case(PUBLIC, kwargs={"name": "swagger-ui.css"})],
    # The API's JSON 404 for every other path under /api/v1/.
    "^(?P<rest>.*)$": [Case(HIDDEN, url="/api/v1/no/such/endpoint")],
    "internal:pre_receive": [Case(HOOK, "POST")],
    "internal:post_receive": [Case(HOOK, "POST")],
    # Smart HTTP is exercised with real credentials in test_git_http_matrix.
    "git_info_refs": [],
    "git_upload_pack": [],
    "git_receive_pack": [],
}

A = "/api/v1"
RP = "/repos/{owner}/{repo}"
ABSENT_LISTS = ("issues", "labels", "milestones", "forks", "stargazers", "wiki/pages")
ABSENT_ROUTES = (
    ("POST", f"{RP}/issues"),
    ("GET", f"{RP}/issues/{{index}}"),
    ("POST", f"{RP}/labels"),
    ("POST", f"{RP}/milestones"),
    ("POST", f"{RP}/forks"),
    ("POST", f"{RP}/wiki/new"),
    ("PUT", "/user/starred/{owner}/{repo}"),
    ("GET", "/user/starred/{owner}/{repo}"),
)
API_ROUTES: dict[tuple[str, str], str] = {
    ("GET", f"{A}/user"): LOGIN,
    ("GET", f"{A}/user/settings"): LOGIN,
    ("PATCH", f"{A}/user/settings"): LOGIN,
    ("GET", f"{A}/user/keys"): LOGIN,
    ("POST", f"{A}/user/keys"): LOGIN,
    ("GET", f"{A}/user/keys/{{id}}"): LOGIN,
    ("DELETE", f"{A}/user/keys/{{id}}"): LOGIN,
    ("GET", f"{A}/user/repos"): LOGIN,
    ("POST", f"{A}/user/repos"): LOGIN,
    ("POST", f"{A}/orgs"): LOGIN,
    ("POST", f"{A}/orgs/{{org}}/repos"): ORG_OWNER,
    ("GET", f"{A}/users/{{username}}/tokens"): PASSWORD,
    ("POST", f"{A}/users/{{username}}/tokens"): PASSWORD,
    ("DELETE", f"{A}/users/{{username}}/tokens/{{id}}"): PASSWORD,
    ("GET", f"{A}/admin/users"): SITE_ADMIN,
    ("POST", f"{A}/admin/users"): SITE_ADMIN,
    ("GET", f"{A}/admin/keys"): SITE_ADMIN,
    ("GET", f"{A}/admin/users/{{username}}/keys"): SITE_ADMIN,
    ("POST", f"{A}/admin/users/{{username}}/keys"): SITE_ADMIN,
    ("DELETE", f"{A}/admin/users/{{username}}/keys/{{id}}"): SITE_ADMIN,
    ("GET", f"{A}/admin/audit"): SITE_ADMIN,
    ("GET", f"{A}/admin/revoked_keys"): SITE_ADMIN,
    ("DELETE", f"{A}/admin/revoked_keys/{{id}}"): SITE_ADMIN,
    # Gitea's everyday reads: the version, organizations and their teams, someone's repositories.
    ("GET", f"{A}/version"): PUBLIC,
    ("GET", f"{A}/orgs"): LOGIN,
    ("GET", f"{A}/user/orgs"): LOGIN,
    ("GET", f"{A}/users/{{username}}/orgs"): LOGIN,
    ("GET", f"{A}/users/{{username}}/repos"): LOGIN,
    ("GET", f"{A}/orgs/{{org}}"): LOGIN,
    # The organization's name is public; its repositories are listed as far as each caller may see them.
    ("GET", f"{A}/orgs/{{org}}/repos"): LOGIN,
    ("GET", f"{A}/orgs/{{org}}/teams"): ORG_MEMBER,
    ("POST", f"{A}/orgs/{{org}}/teams"): ORG_OWNER,
    ("GET", f"{A}/admin/orgs"): SITE_ADMIN,
    ("POST", f"{A}/admin/users/{{username}}/orgs"): SITE_ADMIN,
    # Code: a new branch and a new file each go on a branch of their own, through the push rules.
    ("GET", f"{A}{RP}/branches/{{branch}}"): repo(Role.READ),
    ("POST", f"{A}{RP}/branches"): repo(Role.WRITE),
    ("GET", f"{A}{RP}/contents"): repo(Role.READ),
    ("GET", f"{A}{RP}/contents/{{filepath}}"): repo(Role.READ),
    ("POST", f"{A}{RP}/contents/{{filepath}}"): repo(Role.WRITE),
    ("GET", f"{A}{RP}/raw/{{filepath}}"): repo(Role.READ),
    ("GET", f"{A}{RP}/commits"): repo(Role.READ),
    ("GET", f"{A}{RP}/git/commits/{{sha}}"): repo(Role.READ),
    ("GET", f"{A}{RP}/tags"): repo(Role.READ),
    ("GET", f"{A}{RP}/topics"): repo(Role.READ),
    # carol is a collaborator (204); each caller asks for their own permission.
    ("GET", f"{A}{RP}/collaborators/{{username}}"): repo(Role.READ),
    ("GET", f"{A}{RP}/collaborators/{{username}}/permission"): repo(Role.READ),
    # To its own owner: refused as a conflict (409) once the caller may transfer it, so nothing moves.
    ("POST", f"{A}{RP}/transfer"): repo(Role.ADMIN),
    # Features the portal lacks: their lists are empty to whoever reads the repository; the rest is 404 for all.
    **{("GET", f"{A}{RP}/{path}"): repo(Role.READ) for path in ABSENT_LISTS},
    **{(method, f"{A}{path}"): HIDDEN for method, path in ABSENT_ROUTES},
    ("GET", f"{A}/user/starred"): LOGIN,
    ("GET", f"{A}{RP}"): repo(Role.READ),
    ("PATCH", f"{A}{RP}"): repo(Role.ADMIN),
    ("GET", f"{A}{RP}/branches"): repo(Role.READ),
    ("GET", f"{A}{RP}/collaborators"): repo(Role.READ),
    ("PUT", f"{A}{RP}/collaborators/{{username}}"): repo(Role.ADMIN),
    ("DELETE", f"{A}{RP}/collaborators/{{username}}"): repo(Role.ADMIN),
    ("GET", f"{A}{RP}/keys"): repo(Role.ADMIN),
    ("POST", f"{A}{RP}/keys"): repo(Role.ADMIN),
    ("GET", f"{A}{RP}/keys/{{id}}"): repo(Role.ADMIN),
    ("DELETE", f"{A}{RP}/keys/{{id}}"): repo(Role.ADMIN),
    # Pull requests: #1 is bob's open one (feature into main), #2 a merged one.
    ("GET", f"{A}{RP}/pulls"): repo(Role.READ),
    ("POST", f"{A}{RP}/pulls"): repo(Role.READ),
    ("GET", f"{A}{RP}/pulls/{{index}}"): repo(Role.READ),
    ("GET", f"{A}{RP}/pulls/{{index}}.diff"): repo(Role.READ),
    ("GET", f"{A}{RP}/pulls/{{index}}.patch"): repo(Role.READ),
    ("PATCH", f"{A}{RP}/pulls/{{index}}"): repo(Role.WRITE),
    ("GET", f"{A}{RP}/pulls/{{index}}/files"): repo(Role.READ),
    ("GET", f"{A}{RP}/pulls/{{index}}/commits"): repo(Role.READ),
    ("GET", f"{A}{RP}/pulls/{{index}}/comments"): repo(Role.READ),
    ("GET", f"{A}{RP}/pulls/{{index}}/reviews"): repo(Role.READ),
    ("POST", f"{A}{RP}/pulls/{{index}}/reviews"): repo(Role.READ),
    ("GET", f"{A}{RP}/pulls/{{index}}/reviews/{{id}}"): repo(Role.READ),
    ("GET", f"{A}{RP}/pulls/{{index}}/reviews/{{id}}/comments"): repo(Role.READ),
    ("GET", f"{A}{RP}/pulls/{{index}}/merge"): repo(Role.READ),
    ("POST", f"{A}{RP}/pulls/{{index}}/merge"): repo(Role.WRITE),
    ("GET", f"{A}{RP}/statuses/{{sha}}"): repo(Role.READ),
    ("POST", f"{A}{RP}/statuses/{{sha}}"): repo(Role.WRITE),
    ("GET", f"{A}{RP}/commits/{{ref}}/status"): repo(Role.READ),
    ("GET", f"{A}{RP}/commits/{{ref}}/statuses"): repo(Role.READ),
    ("GET", f"{A}{RP}/branch_protections"): repo(Role.ADMIN),
    ("POST", f"{A}{RP}/branch_protections"): repo(Role.ADMIN),
    ("GET", f"{A}{RP}/branch_protections/{{name}}"): repo(Role.ADMIN),
    ("PATCH", f"{A}{RP}/branch_protections/{{name}}"): repo(Role.ADMIN),
    ("GET", f"{A}{RP}/approval_rules"): repo(Role.ADMIN),
    ("POST", f"{A}{RP}/approval_rules"): repo(Role.ADMIN),
    ("GET", f"{A}{RP}/approval_rules/{{id}}"): repo(Role.ADMIN),
    ("PATCH", f"{A}{RP}/approval_rules/{{id}}"): repo(Role.ADMIN),
    ("GET", f"{A}/orgs/{{org}}/approval_rule_templates"): ORG_OWNER,
    ("POST", f"{A}/orgs/{{org}}/approval_rule_templates"): ORG_OWNER,
    ("GET", f"{A}/orgs/{{org}}/approval_rule_templates/{{id}}"): ORG_OWNER,
    ("PATCH", f"{A}/orgs/{{org}}/approval_rule_templates/{{id}}"): ORG_OWNER,
    ("DELETE", f"{A}/orgs/{{org}}/approval_rule_templates/{{id}}"): ORG_OWNER,
    ("DELETE", f"{A}{RP}/approval_rules/{{id}}"): repo(Role.ADMIN),
    ("DELETE", f"{A}{RP}/branch_protections/{{name}}"): repo(Role.ADMIN),
    ("GET", f"{A}{RP}/hooks"): repo(Role.ADMIN),
    ("POST", f"{A}{RP}/hooks"): repo(Role.ADMIN),
    ("GET", f"{A}{RP}/hooks/{{id}}"): repo(Role.ADMIN),
    ("PATCH", f"{A}{RP}/hooks/{{id}}"): repo(Role.ADMIN),
    ("POST", f"{A}{RP}/hooks/{{id}}/tests"): repo(Role.ADMIN),
    ("GET", f"{A}{RP}/hooks/{{id}}/deliveries"): repo(Role.ADMIN),
    ("GET", f"{A}{RP}/hooks/{{id}}/deliveries/{{delivery_id}}"): repo(Role.ADMIN),
    ("POST", f"{A}{RP}/hooks/{{id}}/deliveries/{{delivery_id}}/attempts"): repo(Role.ADMIN),
    ("DELETE", f"{A}{RP}/hooks/{{id}}"): repo(Role.ADMIN),
    # Builds in GitHub Actions' shapes: an ended build of the branch ci, with its log and an artifact.
    ("GET", f"{A}{RP}/actions/runs"): repo(Role.READ),
    ("GET", f"{A}{RP}/actions/runs/{{run_id}}"): repo(Role.READ),
    ("GET", f"{A}{RP}/actions/runs/{{run_id}}/logs"): repo(Role.READ),
    ("GET", f"{A}{RP}/actions/runs/{{run_id}}/artifacts"): repo(Role.READ),
    ("GET", f"{A}{RP}/actions/artifacts"): repo(Role.READ),
    ("GET", f"{A}{RP}/actions/artifacts/{{artifact_id}}"): repo(Role.READ),
    ("GET", f"{A}{RP}/actions/artifacts/{{artifact_id}}/zip"): repo(Role.READ),
    ("GET", f"{A}{RP}/actions/workflows"): repo(Role.READ),
    ("GET", f"{A}{RP}/actions/workflows/{{workflow_id}}"): repo(Role.READ),
    ("POST", f"{A}{RP}/actions/runs/{{run_id}}/cancel"): repo(Role.WRITE),
    ("POST", f"{A}{RP}/actions/runs/{{run_id}}/rerun"): repo(Role.WRITE),
    ("POST", f"{A}{RP}/actions/workflows/{{workflow_id}}/dispatches"): repo(Role.WRITE),
    ("GET", f"{A}/orgs/{{org}}/hooks"): ORG_OWNER,
    ("POST", f"{A}/orgs/{{org}}/hooks"): ORG_OWNER,
    ("GET", f"{A}/orgs/{{org}}/hooks/{{id}}"): ORG_OWNER,
    ("PATCH", f"{A}/orgs/{{org}}/hooks/{{id}}"): ORG_OWNER,
    ("GET", f"{A}/orgs/{{org}}/hooks/{{id}}/deliveries"): ORG_OWNER,
    ("GET", f"{A}/orgs/{{org}}/hooks/{{id}}/deliveries/{{delivery_id}}"): ORG_OWNER,
    ("POST", f"{A}/orgs/{{org}}/hooks/{{id}}/deliveries/{{delivery_id}}/attempts"): ORG_OWNER,
    ("DELETE", f"{A}/orgs/{{org}}/hooks/{{id}}"): ORG_OWNER,
    # Build secrets and variables: each is made, read, changed, then deleted, in that order.
    **{
        (method, f"{A}{place}/actions/{kind}{rest}"): policy
        for place, policy in ((RP, repo(Role.ADMIN)), ("/orgs/{org}", ORG_OWNER))
        for kind, operations in (
            ("secrets", (("PUT", "/{secretname}"), ("GET", ""), ("DELETE", "/{secretname}"))),
            (
                "variables",
                (
                    ("POST", "/{variablename}"),
                    ("GET", ""),
                    ("GET", "/{variablename}"),
                    ("PUT", "/{variablename}"),
                    ("DELETE", "/{variablename}"),
                ),
            ),
        )
        for method, rest in operations
    },
    # Builds: the key that signs provenance is public; an artifact's attestations are the repository's.
    ("GET", f"{A}/builds/provenance-key"): PUBLIC,
    ("GET", f"{A}{RP}/attestations/{{subject_digest}}"): repo(Role.READ),
    # Environments and deployments: dev has a local target and, as reviewers, the reader, the writer, the admin and
    # the site administrator; the writer's deployment of build #1 waits for one of their reviews.
    ("GET", f"{A}{RP}/environments"): repo(Role.READ),
    ("GET", f"{A}{RP}/environments/{{environment_name}}"): repo(Role.READ),
    ("GET", f"{A}{RP}/deployments"): repo(Role.READ),
    ("POST", f"{A}{RP}/deployments"): repo(Role.WRITE),
    ("GET", f"{A}{RP}/deployments/{{deployment_id}}"): repo(Role.READ),
    ("GET", f"{A}{RP}/deployments/{{deployment_id}}/statuses"): repo(Role.READ),
    ("GET", f"{A}{RP}/deployments/{{deployment_id}}/statuses/{{status_id}}"): repo(Role.READ),
    # Statuses are the portal's own: whoever sees the deployment is told so (405); outsiders still get 404.
    ("POST", f"{A}{RP}/deployments/{{deployment_id}}/statuses"): repo(Role.READ),
    # Reviewers review, whatever their role: here every column with access is one.
    ("POST", f"{A}{RP}/deployments/{{deployment_id}}/reviews"): repo(Role.READ),
    # Nothing succeeded before it: a writer is told there is nothing to roll back to (422).
    ("POST", f"{A}{RP}/deployments/{{deployment_id}}/rollback"): repo(Role.WRITE),
    ("POST", f"{A}{RP}/deployments/{{deployment_id}}/stop"): repo(Role.WRITE),
    # Pipelines: gate, started by a push to its branch, waits for an approval that dev's reviewers (every column
    # with access) answer; once answered, the writes meet an ended execution and are refused by the rules (409).
    ("GET", f"{A}{RP}/pipelines"): repo(Role.READ),
    ("GET", f"{A}{RP}/pipelines/{{pipeline_name}}"): repo(Role.READ),
    ("GET", f"{A}{RP}/pipelines/{{pipeline_name}}/executions"): repo(Role.READ),
    ("GET", f"{A}{RP}/pipelines/{{pipeline_name}}/executions/{{execution_id}}"): repo(Role.READ),
    ("POST", f"{A}{RP}/pipelines/{{pipeline_name}}/executions/{{execution_id}}/approvals"): repo(Role.READ),
    ("POST", f"{A}{RP}/pipelines/{{pipeline_name}}/executions"): repo(Role.WRITE),
    ("POST", f"{A}{RP}/pipelines/{{pipeline_name}}/transitions/{{stage_name}}"): repo(Role.WRITE),
    ("POST", f"{A}{RP}/pipelines/{{pipeline_name}}/executions/{{execution_id}}/stop"): repo(Role.WRITE),
    ("POST", f"{A}{RP}/pipelines/{{pipeline_name}}/executions/{{execution_id}}/retry"): repo(Role.WRITE),
    ("POST", f"{A}{RP}/pipelines/{{pipeline_name}}/stages/{{stage_name}}/rollback"): repo(Role.WRITE),
    # After the review: the admin's change takes the reviewers away.
    ("PUT", f"{A}{RP}/environments/{{environment_name}}"): repo(Role.ADMIN),
    ("DELETE", f"{A}{RP}/environments/{{environment_name}}"): repo(Role.ADMIN),
    # Last, because it succeeds for the repository's admin.
    ("DELETE", f"{A}{RP}"): repo(Role.ADMIN),
}


def _named_routes(patterns=None, namespace: str = "") -> dict[str, str]:
    """Every named route of ours, as {qualified name: the module of its view}."""
    routes: dict[str, str] = {}
    for pattern in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            routes |= _named_routes(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern):
            module = getattr(pattern.callback, "__module__", "")
            if module.split(".")[0] in ("allauth", "ninja"):
                continue
            routes[f"{namespace}{pattern.name or pattern.pattern}"] = module
    return routes


def test_every_route_has_a_policy():
    routes = _named_routes()
    missing = sorted(set(routes) - set(WEB_ROUTES))
    assert not missing, f"routes without an entry in the authorization matrix: {missing}"
    stale = sorted(set(WEB_ROUTES) - set(routes))
    assert not stale, f"matrix entries for routes that no longer exist: {stale}"


def test_every_api_operation_has_a_policy():
    operations = set(api_operations())
    missing = sorted(operations - set(API_ROUTES))
    assert not missing, f"API operations without an entry in the authorization matrix: {missing}"
    stale = sorted(set(API_ROUTES) - operations)
    assert not stale, f"matrix entries for API operations that no longer exist: {stale}"


@pytest.fixture
def world(private_repo, alice, bob, carol, mallory, admin, settings):
    """alice/project (private) and the organization acme (alice owns it; bob is in its devs team)."""
    org = accounts.create_organization(actor=alice, name="acme")
    devs = accounts.create_team(org, actor=alice, name="devs")
    accounts.add_team_member(devs, bob, actor=alice)
    ops = accounts.create_team(org, actor=alice, name="ops")
    accounts.add_team_member(ops, carol, actor=alice)
    tool = repo_services.create_repository(actor=alice, owner=org, name="tool")
    repo_services.set_team_role(tool, devs, actor=alice, role=Role.WRITE)
    repo_services.set_team_role(tool, ops, actor=alice, role=Role.READ)
    deploy_key = repo_services.add_deploy_key(
        actor=alice, title="ci", public_key=_public_key(), repository=private_repo
    )
    people = {"outsider": mallory, "reader": carol, "writer": bob, "admin": alice, "site-admin": admin}
    tokens, refs = {}, {}
    for role, user in people.items():
        scopes = ["api", "write:repo", "write:user", "write:org"] + (["admin"] if role == "site-admin" else [])
        token, tokens[role] = accounts.create_access_token(
            user, actor=user, name="matrix", scopes=scopes, expires_at=timezone.now() + timedelta(days=1)
        )
        key = accounts.add_ssh_key(user, actor=user, title="laptop", public_key=_public_key())
        # A second token, for the route that revokes one (revoking the caller's own would end the test).
        spare, _ = accounts.create_access_token(user, actor=user, name="spare", scopes=["api"], expires_at=None)
        # Another browser's session of theirs, for the route that signs one out.
        other = UserSession.objects.create(user=user, session_key=f"matrix-{role}", ip="192.0.2.1", user_agent="Other")
        refs[role] = {"@own_key": key.pk, "@own_token": spare.pk, "@own_session": other.pk}
    # A key the site administrator revoked, for the route that lifts the block.
    revoked = accounts.add_ssh_key(mallory, actor=mallory, title="old", public_key=_public_key())
    revocation = accounts.revoke_ssh_key(revoked, actor=admin, reason="lost")
    main_sha = git.branch_sha(private_repo.path, "main")
    pulls = _pull_requests(private_repo, org, alice, bob, carol)
    notices = _notifications(alice, people)
    invitation, _ = accounts.invite_user(actor=admin, email="dave@example.com")
    hooks = _webhooks(private_repo, org, alice)
    build_variables = _build_variables(private_repo, org, alice)
    builds = _builds(private_repo, alice, settings)
    deploys = _deployments(private_repo, alice, bob, [carol, bob, alice, admin])
    _gate_pipeline(private_repo)
    _pipeline_approval(private_repo, bob)
    _pipelines(private_repo, alice)
    # A job row, for the routes that requeue or cancel one (unconfirmed, so it stays as it is).
    maintenance = RepositoryMaintenance.objects.create(repository=private_repo)
    for role in refs:
        refs[role] |= (
            {
                "@invitation": invitation.pk,
                "@carol_key": refs["reader"]["@own_key"],
                "@deploy_key": deploy_key.pk,
                "@revocation": revocation.pk,
                "@job_kind": maintenance.job_kind,
                "@job_row": maintenance.pk,
                "@main_sha": main_sha,
                # The lazily loaded parts of pages: a tree's last commits and a diff's next files.
                "@tree_commits": "/alice/project/tree/main?fragment=commits",
                "@commit_batch": f"/alice/project/commit/{main_sha}?start=0&count=20",
                "@own_notification": notices[role],
            }
            | pulls
            | hooks
            | build_variables
            | builds
            | deploys
        )
    return {"people": people, "tokens": tokens, "refs": refs}


def _pull_requests(repo, org, alice, bob, carol) -> dict:
    """bob's open pull request #1 (feature into main) with a review, a thread and a notification; a merged #2;
    a protection of main, an approval rule and an organization template."""
    from reviews import services as reviews

    for branch, name in (("feature", "app.py"), ("done", "done.txt")):
        git.update_ref(repo.path, f"refs/heads/{branch}", git.branch_sha(repo.path, "main"), git.ZERO_SHA)
        git.commit_files(repo.path, branch, {name: b"x\n"}, f"add {name}", name="bob", email="bob@example.com")
    pr = reviews.open_pull_request(repo, actor=bob, title="Feature", base="main", head="feature")
    done = reviews.open_pull_request(repo, actor=bob, title="Done", base="main", head="done")
    reviews.merge_pull_request(done, actor=alice, strategy="fast-forward-only", head_sha=done.head_sha)
    review = reviews.submit_review(pr, actor=carol, event="COMMENT", body="Looks fine")
    thread = reviews.add_comment(pr, actor=alice, body="```suggestion\ny\n```", path="app.py", line=1)
    reviews.request_review(pr, actor=bob, users=[carol])
    protection = reviews.save_branch_protection(
        None, actor=alice, repository=repo, branch_pattern="main", require_pull_request=False
    )
    rule = reviews.save_approval_rule(None, actor=alice, repository=repo, name="Review")
    template = reviews.save_approval_rule(None, actor=alice, organization=org, name="Template")
    return {
        "@pull_batch": f"/alice/project/pulls/1/files/diff?old={pr.merge_base_sha}&new={pr.head_sha}&start=0&count=20",
        "@head_sha": pr.head_sha,
        "@review": review.pk,
        "@comment": thread.pk,
        "@protection": protection.pk,
        "@rule": rule.pk,
        "@template": template.pk,
    }


def _webhooks(repo, org, alice) -> dict:
    """A hook of alice/project and one of acme, each with a delivery (to an address nothing is sent to here)."""
    from reviews import webhooks

    place = {"url": "https://example.com/hook", "events": ["push"], "active": True}
    hook = webhooks.save_webhook(None, actor=alice, repository=repo, **place)
    org_hook = webhooks.save_webhook(None, actor=alice, organization=org, **place)
    return {
        "@hook": hook.pk,
        "@delivery": webhooks.test_webhook(hook, actor=alice).pk,
        "@org_hook": org_hook.pk,
        "@org_delivery": webhooks.test_webhook(org_hook, actor=alice, repository=repo).pk,
    }


def _build_variables(repo, org, alice) -> dict:
    """A build secret of alice/project and a build variable of acme."""
    from releases import variables

    secret, _ = variables.set_build_variable(actor=alice, repository=repo, name="TOKEN", value="s3cret", secret=True)
    variable, _ = variables.set_build_variable(actor=alice, organization=org, name="REGION", value="eu", secret=False)
    return {"@secret": secret.name, "@org_variable": variable.name}


def _builds(repo, alice, settings) -> dict:
    """Build #1 of alice/project, ended, with its log and a signed artifact in the store; build #2 queued."""
    import hashlib

    from releases import logs, services
    from releases.models import Build, BuildArtifact
    from releases.storage import store_artifact

    settings.PORTAL_BUILDS_ROOT = settings.VAR_DIR / "builds"
    sha = git.branch_sha(repo.path, "main")
    ended = services.start_build(repo, sha=sha, ref="refs/heads/main", trigger="manual", initiator=alice)
    services.start_build(repo, sha=sha, ref="refs/heads/main", trigger="manual", initiator=alice)
    log = settings.VAR_DIR / "matrix.log"
    log.write_bytes(b"[Container] Entering phase BUILD\nbuilt\n")
    logs.store(logs.stored_name(ended), log)
    Build.objects.filter(pk=ended.pk).update(log_path=logs.stored_name(ended))
    services.record_result(ended, status=Build.BuildStatus.SUCCEEDED, log_size=log.stat().st_size)
    content = b"PK\x05\x06" + bytes(18)
    digest = hashlib.sha256(content).hexdigest()
    archive = settings.VAR_DIR / "app.zip"
    archive.write_bytes(content)
    artifact = BuildArtifact.objects.create(
        build=ended, name="app", sha256=digest, size_in_bytes=len(content), files=[], provenance={"payload": ""}
    )
    store_artifact(archive, artifact.storage_name)
    # The branch ci holds a buildspec, for the route that starts a build of it.
    git.update_ref(repo.path, "refs/heads/ci", sha, git.ZERO_SHA)
    spec = b"version: 0.2\nphases:\n  build:\n    commands:\n      - echo ok\n"
    git.commit_files(repo.path, "ci", {"buildspec.yml": spec}, "build", name="alice", email="alice@example.com")
    return {"@artifact": artifact.pk, "@run": ended.pk}


def _deployments(repo, alice, bob, reviewers) -> dict:
    """The environment dev of alice/project with one local target and reviewers; a successful build of the branch
    deployable (which no other route stops or moves) with an artifact; bob's deployment of it to dev, waiting for a
    review."""
    from releases import deployments, environments, services
    from releases.models import Build, BuildArtifact, DeploymentTarget

    git.update_ref(repo.path, "refs/heads/deployable", git.branch_sha(repo.path, "main"), git.ZERO_SHA)
    sha = git.commit_files(
        repo.path, "deployable", {"app.txt": b"v1\n"}, "app", name="alice", email="alice@example.com"
    )
    build = services.start_build(repo, sha=sha, ref="refs/heads/deployable", trigger="manual", initiator=alice)
    services.record_result(build, status=Build.BuildStatus.SUCCEEDED)
    artifact = BuildArtifact.objects.create(
        build=build, name="app", sha256="1" * 64, size_in_bytes=0, files=[], provenance={"payload": ""}
    )
    dev, _created, _keys = environments.set_environment(
        repo,
        "dev",
        actor=alice,
        targets=[{"name": "a", "type": "local"}],
        reviewers=[{"type": "User", "id": user.pk} for user in reviewers],
    )
    secret, _ = environments.set_variable(dev, "DEPLOY_TOKEN", "s3cret", secret=True, actor=alice)
    deployment = deployments.request_deployment(repo, dev, actor=bob, artifact=artifact)
    # Its part on the target a, for the route that reads that target's log.
    DeploymentTarget.objects.create(deployment=deployment, target=dev.targets.get(), name="a", kind="local")
    return {
        "@deployment": deployment.pk,
        "@deployment_status": deployment.statuses.get().pk,
        "@environment_secret": secret.name,
    }


def _gate_pipeline(repo) -> None:
    """The pipeline gate of alice/project, read from the branch gate: its execution 1, started by a push, waits at
    the approval that dev's reviewers answer."""
    from releases import pipelines

    git.update_ref(repo.path, "refs/heads/gate", git.branch_sha(repo.path, "main"), git.ZERO_SHA)
    spec = (
        b"version: 1\nname: gate\nsource:\n  branch: gate\nstages:\n  - name: Approval\n    actions:\n"
        b"      - {name: Approve, type: approval, environment: dev}\n"
    )
    sha = git.commit_files(repo.path, "gate", {"pipeline.yml": spec}, "gate", name="alice", email="alice@example.com")
    pipelines.pipeline_for(repo, sha, branch="gate")
    pipelines.start_execution(repo, "gate", sha, requester=None, trigger="push")


def _pipeline_approval(repo, bob) -> None:
    """Execution 1 of alice/project's pipeline waiting, which bob started, waiting at its approval."""
    from releases.models import Pipeline, PipelineActionRun, PipelineApproval, PipelineExecution

    pipeline = Pipeline.objects.create(repository=repo, name="waiting")
    sha = git.branch_sha(repo.path, "main")
    execution = PipelineExecution.objects.create(
        pipeline=pipeline, number=1, source_sha=sha, trigger="manual", requester=bob
    )
    run = PipelineActionRun.objects.create(execution=execution, stage="Approval", action="Approve", type="approval")
    PipelineApproval.objects.create(
        execution=execution,
        action_run=run,
        stage="Approval",
        action="Approve",
        environment_name="uat",
        deadline=timezone.now() + timedelta(days=7),
    )


def _pipelines(repo, alice) -> None:
    """The pipeline release of alice/project, whose source is the branch pipelined, with execution 1 of it."""
    from releases import pipelines
    from releases.pipelinespec import default_pipeline_yaml

    git.update_ref(repo.path, "refs/heads/pipelined", git.branch_sha(repo.path, "main"), git.ZERO_SHA)
    structure = default_pipeline_yaml("pipelined", ("dev", "uat")).encode()
    sha = git.commit_files(
        repo.path, "pipelined", {"pipeline.yml": structure}, "pipeline", name="alice", email="alice@example.com"
    )
    pipelines.pipeline_for(repo, sha)
    pipelines.start_execution(repo, "release", sha, requester=alice, trigger="push")


def _notifications(alice, people: dict) -> dict:
    """A notification of each person's own, about a pull request in a public repository that all of them can read."""
    from reviews.models import Notification, PullRequest

    public = repo_services.create_repository(
        actor=alice, owner=alice, name="open", visibility="public", initialize=True
    )
    sha = git.branch_sha(public.path, "main")
    pr = PullRequest.objects.create(
        repository=public,
        number=1,
        title="x",
        author=alice,
        base_branch="main",
        head_branch="x",
        head_sha=sha,
        base_sha=sha,
    )
    return {
        role: Notification.objects.create(user=user, kind="comment", pull_request=pr, text="hello", url="/").pk
        for role, user in people.items()
    }


def _public_key() -> str:
    return asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()


def _expected(policy: str, who: str) -> str:
    """What a person should get: 'ok', 'login' (sent to sign in), 'unauthorized', 'forbidden' or 'hidden'."""
    if policy == PUBLIC:
        return "ok"
    if policy == LOGIN:
        return "login" if who == "anonymous" else "ok"
    if policy == SITE_ADMIN:
        return "ok" if who == "site-admin" else "hidden"
    if policy in (ORG_MEMBER, ORG_OWNER):
        # alice owns acme, bob is a member; carol and mallory are outsiders to it.
        if who in ("admin", "site-admin"):
            return "ok"
        # bob (writer) is in devs, carol (reader) in ops: both are members but not owners.
        if who in ("writer", "reader"):
            return "ok" if policy == ORG_MEMBER else "forbidden"
        return "hidden"
    if policy == HOOK:
        return "hidden"
    if policy == HIDDEN:
        return "hidden"
    if policy == FORGED_LINK:
        return {"anonymous": "login", "outsider": "hidden"}.get(who, "forbidden")
    if policy == PASSWORD:
        return "login"
    need = Role.from_name(policy.removeprefix("repo-"))
    if who == "site-admin":
        return "ok"
    if who in ("anonymous", "outsider"):
        return "hidden"
    return "ok" if RANK[who] >= need else "forbidden"


def _outcome(response, *, api: bool, hook: bool = False) -> str:
    status = response.status_code
    if hook and status == 403:
        return "refused"
    if status == 404:
        return "hidden"
    if status == 403:
        return "forbidden"
    if status == 401:
        return "login" if api else "unauthorized"
    if status == 400 and hook:
        return "refused"
    if status in (301, 302) and "/accounts/login/" in response.get("Location", ""):
        return "login"
    assert status < 500, f"server error {status}"
    return "ok"


def _client(world, who: str) -> Client:
    client = Client()
    if who != "anonymous":
        client.force_login(world["people"][who])
    return client


@pytest.mark.parametrize("who", [*PEOPLE, "site-admin"])
def test_web_routes_follow_the_matrix(world, who):
    from django.urls import reverse

    client = _client(world, who)
    failures = []
    refs = world["refs"].get(who, world["refs"]["outsider"])
    for name, cases in WEB_ROUTES.items():
        for case in cases:
            kwargs = {k: refs.get(v, v) if isinstance(v, str) else v for k, v in case.kwargs.items()}
            url = refs.get(case.url, case.url) or reverse(name, kwargs=kwargs)
            response = client.post(url) if case.method == "POST" else client.get(url)
            expected = _expected(case.policy, who)
            got = _outcome(response, api=False, hook=case.policy == HOOK)
            # A hidden private repository may also send anonymous visitors to sign in: that reveals nothing.
            if expected == "hidden" and who == "anonymous" and got == "login":
                continue
            if got != expected:
                failures.append(f"{case.method} {url}: expected {expected}, got {got} ({response.status_code})")
            if response.get("Content-Type", "").startswith("text/html") and not _strict_policy(response):
                failures.append(f"{case.method} {url}: no strict Content-Security-Policy on an HTML page")
    assert not failures, "\n".join(failures)


CSP_DIRECTIVES = ("default-src 'self'", "frame-ancestors 'none'", "form-action 'self'", "base-uri 'none'")


def _strict_policy(response) -> bool:
    """The page's policy allows no inline script or style, no framing, no foreign form targets, no <base>."""
    policy = response.get("Content-Security-Policy", "")
    directives = {part.strip() for part in policy.split(";")}
    return all(d in directives for d in CSP_DIRECTIVES) and "unsafe-inline" not in policy


@pytest.mark.parametrize("who", [*PEOPLE, "site-admin"])
def test_api_operations_follow_the_matrix(world, who):
    client = Client()
    headers = {} if who == "anonymous" else {"HTTP_AUTHORIZATION": f"token {world['tokens'][who]}"}
    me = WHO.get(who, "root")
    refs = world["refs"].get(who, world["refs"]["outsider"])
    failures = []
    for (method, path), policy in API_ROUTES.items():
        # Token routes name the caller; key ids are the caller's own key, or the repository's deploy key.
        own = path.startswith(f"{A}/users/") or path.startswith(f"{A}/user/")
        values = {
            "owner": "alice",
            "repo": "project",
            "org": "acme",
            "username": me if own else "carol",
            "id": refs["@own_token"]
            if "tokens" in path
            else refs["@deploy_key"]
            if path.startswith(f"{A}{RP.split('{')[0]}")
            else refs["@own_key"]
            if own
            else refs["@carol_key"],
        }
        values |= {
            "index": 2 if method == "GET" and path.endswith("/merge") else 1,
            "sha": refs["@head_sha"],
            "ref": "main",
            "name": "main",
            "secretname": "MATRIX_SECRET",
            "variablename": "MATRIX_VARIABLE",
            "subject_digest": "sha256:" + "0" * 64,
            "run_id": refs["@run"],
            "artifact_id": refs["@artifact"],
            "workflow_id": "buildspec.yml",
            "environment_name": "dev",
            "deployment_id": refs["@deployment"],
            "status_id": refs["@deployment_status"],
            "pipeline_name": "gate",
            "execution_id": 1,
            "stage_name": "Approval",
            "branch": "main",
            "filepath": f"matrix-{uuid.uuid4().hex[:8]}.txt" if method == "POST" else "README.md",
        }
        if path.endswith("/permission"):
            values["username"] = me
        if "/revoked_keys/" in path:
            values["id"] = refs["@revocation"]
        elif "/approval_rules/" in path:
            values["id"] = refs["@rule"]
        elif "/approval_rule_templates/" in path:
            values["id"] = refs["@template"]
        elif "/reviews/" in path:
            values["id"] = refs["@review"]
        elif "/hooks/" in path:
            org_hook = path.startswith(f"{A}/orgs/")
            values["id"] = refs["@org_hook" if org_hook else "@hook"]
            values["delivery_id"] = refs["@org_delivery" if org_hook else "@delivery"]
        url = path.format(**values)
        body = json.dumps(_api_body(method, path))
        response = client.generic(method, url, data=body, content_type="application/json", **headers)
        expected, got = _expected(policy, who), _outcome(response, api=True)
        if expected == "hidden" and who == "anonymous" and got == "login":
            continue
        # The API answers 403 (not 404) to signed-in non-admins on admin endpoints, as Gitea does, and
        # to outsiders creating repositories in an organization, whose name is public anyway.
        if policy in (SITE_ADMIN, ORG_OWNER) and expected == "hidden" and got == "forbidden":
            continue
        # Acting on another user's tokens, or on a missing id, is a 404 for a signed-in caller.
        if expected == "ok" and got in ("hidden", "unauthorized") and ("{id}" in path or "{username}" in path):
            continue
        if got != expected:
            failures.append(f"{method} {url}: expected {expected}, got {got} ({response.status_code})")
    assert not failures, "\n".join(failures)


def _api_body(method: str, path: str) -> dict:
    """A valid body for each write, so the answer is about access and not about the schema."""
    if method not in ("POST", "PUT", "PATCH"):
        return {}
    if "/pipelines/" in path:
        ends = {
            "/approvals": {"status": "Approved", "summary": "matrix"},
            "/transitions/{stage_name}": {"enabled": False, "reason": "matrix"},
            "/stop": {"abandon": True},
            "/retry": {"mode": "ALL_ACTIONS"},
            "/rollback": {"target_execution_id": 1},
        }
        return next((body for end, body in ends.items() if path.endswith(end)), {})
    if "/actions/secrets/" in path:
        return {"data": "matrix"}
    if "/actions/variables/" in path:
        return {"value": "matrix"}
    if path.endswith("/environments/{environment_name}"):
        return {"wait_timer": 0, "reviewers": []}
    if path.endswith("/deployments"):
        return {"environment": "dev", "ref": "deployable"}
    if path.endswith("/deployments/{deployment_id}/reviews"):
        return {"state": "approved", "comment": "matrix"}
    if path.endswith("/keys"):
        return {"title": "matrix", "key": _public_key()}
    if path.endswith("/hooks"):
        return {"type": "gitea", "config": {"url": "https://example.com/matrix", "content_type": "json"}}
    if path.endswith("/hooks/{id}"):
        return {"active": True}
    if path.endswith("/repos"):
        return {"name": f"matrix-{uuid.uuid4().hex[:8]}"}
    if path.endswith("/orgs"):
        return {"username": f"org-{uuid.uuid4().hex[:8]}"}
    if path.endswith("/teams"):
        return {"name": f"team-{uuid.uuid4().hex[:8]}"}
    if path.endswith("/branches"):
        return {"new_branch_name": f"matrix-{uuid.uuid4().hex[:8]}", "old_ref_name": "main"}
    if "/contents/" in path:
        return {"content": "bWF0cml4Cg==", "new_branch": f"matrix-{uuid.uuid4().hex[:8]}"}
    if path.endswith("/transfer"):
        return {"new_owner": "alice"}
    if path.endswith("/admin/users"):
        name = f"user-{uuid.uuid4().hex[:8]}"
        return {"username": name, "email": f"{name}@example.com"}
    if path.endswith("/tokens"):
        return {"name": "matrix-2", "scopes": ["api"]}
    if "/collaborators/" in path:
        return {"permission": "read"}
    if path.endswith("/settings"):
        return {"full_name": "Someone"}
    if path.endswith("/pulls/{index}"):
        return {"title": "Renamed"}
    if path.endswith("/pulls"):
        return {"title": "Matrix", "head": "feature", "base": "main"}
    if path.endswith("/reviews"):
        return {"event": "COMMENT", "body": "Seen"}
    if path.endswith("/merge"):
        return {"Do": "merge", "head_commit_id": "0" * 40}
    if "/statuses/" in path:
        return {"state": "success", "context": "matrix"}
    if path.endswith("/branch_protections"):
        return {"rule_name": f"m-{uuid.uuid4().hex[:8]}"}
    if "approval_rule" in path:
        return {"name": "Matrix"}
    if path.endswith("/dispatches"):
        return {"ref": "ci"}
    return {}


def _basic(username: str, token: str) -> dict:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{username}:{token}".encode()).decode()}


@pytest.mark.parametrize("who", PEOPLE)
def test_git_http_matrix(world, who):
    """Both smart-HTTP services: anonymous is challenged, outsiders see nothing, readers cannot push."""
    client = Client()
    headers = {} if who == "anonymous" else _basic(WHO[who], world["tokens"][who])
    for service, need in (("git-upload-pack", Role.READ), ("git-receive-pack", Role.WRITE)):
        response = client.get(f"/alice/project.git/info/refs?service={service}", **headers)
        if who == "anonymous":
            assert response.status_code == 401
        elif who == "outsider":
            assert response.status_code == 404
        elif RANK[who] >= need:
            assert response.status_code == 200, (who, service)
            assert response["Content-Type"] == f"application/x-{service}-advertisement"
        else:
            assert response.status_code == 403, (who, service)


def test_git_http_read_token(world, private_repo):
    """A repository read token (repos/read_tokens.py): fetches its repository, never pushes, never reaches another
    repository, and is refused once expired or altered."""
    import time

    from repos import read_tokens

    client = Client()
    token = read_tokens.mint(private_repo, seconds=60)
    expired = read_tokens.mint(private_repo, seconds=60, now=time.time() - 3600)
    cases = [
        (token, "alice/project", "git-upload-pack", 200),
        (token, "alice/project", "git-receive-pack", 403),
        (token, "acme/tool", "git-upload-pack", 404),
        (expired, "alice/project", "git-upload-pack", 401),
        (token[:-1] + ("A" if token[-1] != "A" else "B"), "alice/project", "git-upload-pack", 401),
    ]
    for credential, path, service, status in cases:
        headers = _basic(read_tokens.USERNAME, credential)
        response = client.get(f"/{path}.git/info/refs?service={service}", **headers)
        assert response.status_code == status, (path, service)
        # A flush packet: the client wants nothing (or pushes nothing).
        posted = client.post(
            f"/{path}.git/{service}", b"0000", content_type=f"application/x-{service}-request", **headers
        )
        assert posted.status_code == status, (path, service)


@pytest.mark.parametrize("who", PEOPLE)
def test_git_ssh_matrix(world, who, ssh_server, ssh_keypair, git_ssh_env):
    """Both SSH services with the real ssh client: unknown keys are refused, outsiders see nothing,
    readers cannot push."""
    keyfile, public_key = ssh_keypair(who)
    if who != "anonymous":
        person = world["people"][who]
        accounts.add_ssh_key(person, actor=person, title="matrix", public_key=public_key)
    env = git_ssh_env(keyfile)
    ssh = shlex.split(env["GIT_SSH_COMMAND"])
    for service, need in (("git-upload-pack", Role.READ), ("git-receive-pack", Role.WRITE)):
        result = subprocess.run(
            [*ssh, "git@127.0.0.1", f"{service} '/alice/project.git'"],
            env=env,
            # A flush packet: the client wants nothing (or pushes nothing) after the advertisement.
            input=b"0000",
            capture_output=True,
            timeout=60,
        )
        stderr = result.stderr.decode()
        if who == "anonymous":
            assert result.returncode == 255 and "Permission denied" in stderr, (service, stderr)
        elif who == "outsider":
            assert result.returncode == 1 and "Repository not found" in stderr, (service, stderr)
            assert result.stdout == b""
        elif RANK[who] >= need:
            # The service answered with its ref advertisement: a pkt-line naming refs/heads/main.
            assert result.returncode == 0, (who, service, stderr)
            assert b"refs/heads/main" in result.stdout
        else:
            assert result.returncode == 1 and "needs write access" in stderr, (service, stderr)
            assert result.stdout == b""
