"""Environments, their targets, variables and secrets: the defaults, each setting refused by the field it names,
deploy keys encrypted at rest, admins only, and audit events that never carry a secret."""

import json

import asyncssh
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404

from portal import services as accounts
from portal.models import AuditEvent
from releases import access, environments, secrets, ssh_target
from releases.models import Environment, EnvironmentTarget, EnvironmentVariable
from repos import services as repo_services

SECRET = "s3cret-value/with:odd&chars-7c2e"


@pytest.fixture
def host_key():
    # Any public key line will do as the host's: a fresh Ed25519 one.
    return ssh_target.generate_deploy_key("host")[1]


def ssh(name: str, host_key: str, **overrides) -> dict:
    return {"name": name, "type": "ssh", "host": "deploy.example.com", "port": 22, "user": "deploy"} | {
        "host_key": host_key,
        **overrides,
    }


def refused_field(call) -> str:
    with pytest.raises(ValidationError) as caught:
        call()
    return caught.value.params["field"]


def test_defaults_are_dev_then_uat_and_kept_once_changed(private_repo, alice):
    made = environments.ensure_default_environments(private_repo)
    assert [(e.name, e.position) for e in made] == [("dev", 0), ("uat", 1)]
    environment = made[0]
    assert environments.config_of(environment).name == "OneAtATime"
    assert environment.prevent_self_review is True
    assert environments.ref_policy_of(environment).is_open
    environments.delete_environment(made[1], actor=alice)
    # A repository that has environments keeps what it has.
    assert [e.name for e in environments.ensure_default_environments(private_repo)] == ["dev"]
    environments.set_environment(private_repo, "prod", actor=alice)
    assert [(e.name, e.position) for e in environments.environments_of(private_repo)] == [("dev", 0), ("prod", 1)]


def test_settings_are_stored_as_the_validators_read_them(private_repo, alice, bob, host_key):
    environment, created, keys = environments.set_environment(
        private_repo,
        "uat",
        actor=alice,
        deployment_config={"type": "FLEET_PERCENT", "value": 50},
        reviewers=[{"type": "User", "id": bob.pk}, {"type": "User", "id": alice.pk}],
        required_approvals=2,
        prevent_self_review=False,
        deployment_branch_policy={"default_branch": True, "patterns": ["tag:v*"]},
        wait_timer=30,
        freeze_windows=[
            {"cron": "0 18 * * 5", "duration_minutes": 3840, "timezone": "Europe/Paris"},
            {"start": "2026-12-24T18:00", "end": "2026-12-27T08:00", "timezone": "Europe/Paris", "name": "Xmas"},
        ],
        targets=[{"name": "web-1", "type": "local"}, ssh("web-2", host_key, health_check="https://web-2/health")],
    )
    assert created and list(keys) == ["web-2"]
    environment = Environment.objects.get(pk=environment.pk)
    config = environments.config_of(environment)
    assert (config.type, config.value) == ("FLEET_PERCENT", 50)
    assert set(environment.reviewer_users.all()) == {alice, bob} and environment.required_approvals == 2
    assert environments.ref_policy_of(environment).patterns == ("tag:v*",)
    cron, dated = environments.freeze_windows_of(environment)
    assert cron.cron == "0 18 * * 5" and dated.start.isoformat() == "2026-12-24T18:00:00+01:00"
    assert dated.name == "Xmas" and environment.wait_timer == 30
    assert [(t.name, t.kind, t.position) for t in environment.targets.all()] == [
        ("web-1", "local", 0),
        ("web-2", "ssh", 1),
    ]
    assert environment.targets.get(name="web-2").health_url == "https://web-2/health"
    # Settings left out keep their value; the configuration may be named.
    environments.set_environment(private_repo, "UAT", actor=alice, deployment_config="AllAtOnce")
    environment.refresh_from_db()
    assert environments.config_of(environment).name == "AllAtOnce" and environment.wait_timer == 30
    assert environment.targets.count() == 2 and environment.required_approvals == 2


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"deployment_config": {"type": "FLEET_PERCENT", "value": 100}}, "deployment_config"),
        ({"deployment_config": "SomeAtATime"}, "deployment_config"),
        ({"deployment_config": {"type": "MOST_CONCURRENCY", "value": 1}}, "deployment_config"),
        ({"deployment_branch_policy": {"patterns": ["release/*"]}}, "deployment_branch_policy.patterns.0"),
        ({"deployment_branch_policy": {"patterns": ["tag:v*", "branch:a b"]}}, "deployment_branch_policy.patterns.1"),
        ({"deployment_branch_policy": {"branches": True}}, "deployment_branch_policy.branches"),
        (
            {"freeze_windows": [{"cron": "0 18 * *", "duration_minutes": 60, "timezone": "UTC"}]},
            "freeze_windows.0.cron",
        ),
        (
            {"freeze_windows": [{"start": "2026-12-24T18:00", "end": "2026-12-24T10:00", "timezone": "UTC"}]},
            "freeze_windows.0.end",
        ),
        (
            {"freeze_windows": [{"start": "2026-12-24", "end": "2026-12-26", "timezone": "Mars/Base"}]},
            "freeze_windows.0.timezone",
        ),
        ({"wait_timer": 43201}, "wait_timer"),
        ({"required_approvals": 1}, "required_approvals"),
        ({"reviewers": [{"type": "User", "id": 999999}]}, "reviewers.0.id"),
        ({"targets": [{"name": "a/b"}]}, "targets.0.name"),
        ({"targets": [{"name": "a"}, {"name": ".."}]}, "targets.1.name"),
        ({"targets": [{"name": "a"}, {"name": "A"}]}, "targets.1.name"),
        ({"targets": [{"name": "a", "type": "ftp"}]}, "targets.0.type"),
        ({"targets": [{"name": "a", "host": "example.com"}]}, "targets.0.host"),
        ({"targets": [{"name": "a", "type": "ssh", "host": "h", "port": 22, "user": "u"}]}, "targets.0.host_key"),
        (
            {
                "targets": [
                    {"name": "a", "type": "ssh", "host": "-oProxyCommand=x", "port": 22, "user": "u", "host_key": "k"}
                ]
            },
            "targets.0.host",
        ),
        ({"targets": [{"name": "a", "secret": "x"}]}, "targets.0.secret"),
        # Three targets with a minimum of three healthy: none could ever be deployed to.
        (
            {"deployment_config": {"type": "HOST_COUNT", "value": 3}, "targets": [{"name": n} for n in "abc"]},
            "deployment_config",
        ),
    ],
)
def test_a_bad_setting_is_refused_by_its_field_and_nothing_is_written(private_repo, alice, given, field):
    assert refused_field(lambda: environments.set_environment(private_repo, "dev", actor=alice, **given)) == field
    assert not Environment.objects.filter(repository=private_repo).exists()
    assert not AuditEvent.objects.filter(action__startswith="environment.").exists()


@pytest.mark.parametrize("name", ["..", ".", "a/b", "../etc", "", "x" * 101, "dev ops"])
def test_a_bad_environment_name_is_refused(private_repo, alice, name):
    assert refused_field(lambda: environments.set_environment(private_repo, name, actor=alice)) == "name"


def test_ssh_targets_need_a_real_host_key_and_a_port(private_repo, alice, host_key):
    environment, _, _ = environments.set_environment(private_repo, "dev", actor=alice)
    bad_line = ssh("web", "ssh-ed25519 not-base64!")
    assert refused_field(lambda: environments.set_targets(environment, [{"name": "a"}, bad_line], actor=alice)) == (
        "targets.1.host_key"
    )
    assert refused_field(
        lambda: environments.set_targets(environment, [ssh("w", host_key, port=70000)], actor=alice)
    ) == ("targets.0.port")
    assert refused_field(
        lambda: environments.set_targets(environment, [ssh("w", host_key, port=None)], actor=alice)
    ) == ("targets.0.port")
    assert not environment.targets.exists()
    # A known_hosts line is taken, and the key alone is pinned.
    environments.set_targets(environment, [ssh("web", f"deploy.example.com {host_key}")], actor=alice)
    assert environment.targets.get().host_key == host_key.rsplit(" ", 1)[0]


def test_a_new_ssh_target_gets_a_deploy_key_encrypted_at_rest(private_repo, alice, host_key):
    environment, _, _ = environments.set_environment(private_repo, "dev", actor=alice)
    keys = environments.set_targets(environment, [ssh("web-1", host_key), ssh("web-2", host_key)], actor=alice)
    target = EnvironmentTarget.objects.get(environment=environment, name="web-1")
    assert keys["web-1"] == target.deploy_key_public and keys["web-1"].startswith("ssh-ed25519 ")
    assert keys["web-1"] != keys["web-2"]
    assert "PRIVATE KEY" not in target.deploy_key_private
    private = environments.deploy_key_of(target)
    assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert secrets.decrypt(target.deploy_key_private) == private
    # The key belongs to its public line.
    assert ssh_target.fingerprint(keys["web-1"]) == ssh_target.fingerprint(
        asyncssh.import_private_key(private).export_public_key().decode()
    )
    # A target that stays keeps its key, and no new key is returned for it; a target left out goes.
    again = environments.set_targets(environment, [ssh("web-1", host_key, port=2222), {"name": "local"}], actor=alice)
    assert again == {}
    target.refresh_from_db()
    assert target.port == 2222 and target.deploy_key_public == keys["web-1"]
    assert [t.name for t in environment.targets.all()] == ["web-1", "local"]


@pytest.mark.parametrize(
    ("who", "error"), [("bob", PermissionDenied), ("carol", PermissionDenied), ("mallory", Http404)]
)
def test_only_admins_change_environments(private_repo, alice, who, error, request, host_key):
    user = request.getfixturevalue(who)
    environment, _, _ = environments.set_environment(private_repo, "dev", actor=alice)
    variable, _ = environments.set_variable(environment, "REGION", "eu", secret=False, actor=alice)
    attempts = [
        lambda: environments.set_environment(private_repo, "prod", actor=user),
        lambda: environments.set_environment(private_repo, "dev", actor=user, wait_timer=5),
        lambda: environments.set_targets(environment, [ssh("web", host_key)], actor=user),
        lambda: environments.set_variable(environment, "TOKEN", SECRET, secret=True, actor=user),
        lambda: environments.delete_variable(variable, actor=user),
        lambda: environments.delete_environment(environment, actor=user),
    ]
    for attempt in attempts:
        with pytest.raises(error):
            attempt()
    assert [e.name for e in environments.environments_of(private_repo)] == ["dev"]
    environment.refresh_from_db()
    assert environment.wait_timer == 0 and not environment.targets.exists()
    assert list(environment.variables.values_list("name", flat=True)) == ["REGION"]


def test_access_checks_for_later_use(private_repo, alice, bob, carol, mallory):
    assert [access.can_configure_environments(u, private_repo) for u in (alice, bob, carol, mallory)] == [
        True,
        False,
        False,
        False,
    ]
    assert [access.can_deploy(u, private_repo) for u in (alice, bob, carol, mallory)] == [True, True, False, False]


def test_variables_and_secrets_follow_the_build_rules_and_are_audited_without_values(private_repo, alice, host_key):
    environment, _, keys = environments.set_environment(private_repo, "dev", actor=alice, targets=[ssh("w", host_key)])
    secret, created = environments.set_variable(environment, "DEPLOY_TOKEN", SECRET, secret=True, actor=alice)
    assert created and secret.value != SECRET and secrets.decrypt(secret.value) == SECRET
    variable, _ = environments.set_variable(environment, "DEPLOY_TOKEN", "plain", secret=False, actor=alice)
    assert variable.value == "plain" and variable != secret
    same, created = environments.set_variable(environment, "deploy_token", SECRET + "2", secret=True, actor=alice)
    assert not created and same.pk == secret.pk and same.name == "DEPLOY_TOKEN"
    assert refused_field(lambda: environments.set_variable(environment, "1X", "v", secret=False, actor=alice)) == "name"
    assert (
        refused_field(lambda: environments.set_variable(environment, "CODEBUILD_X", "v", secret=False, actor=alice))
        == "name"
    )
    assert refused_field(lambda: environments.set_variable(environment, "X", "", secret=True, actor=alice)) == "value"
    environments.delete_variable(variable, actor=alice)
    events = AuditEvent.objects.filter(action__startswith="environment")
    assert {e.action for e in events} >= {
        "environment.create",
        "environment_secret.create",
        "environment_secret.update",
        "environment_variable.create",
        "environment_variable.delete",
    }
    dumped = json.dumps([[e.before, e.after, e.target_repr] for e in events])
    private = environments.deploy_key_of(environment.targets.get())
    assert SECRET not in dumped and "plain" not in dumped
    assert private not in dumped and private.splitlines()[1] not in dumped
    assert environment.targets.get().deploy_key_private not in dumped
    assert ssh_target.fingerprint(keys["w"]) in dumped


def test_deleting_an_environment_deletes_its_targets_and_variables(private_repo, alice, host_key):
    environment, _, _ = environments.set_environment(
        private_repo, "dev", actor=alice, targets=[{"name": "a"}, ssh("b", host_key)]
    )
    environments.set_variable(environment, "TOKEN", SECRET, secret=True, actor=alice)
    environments.set_variable(environment, "REGION", "eu", secret=False, actor=alice)
    other, _, _ = environments.set_environment(private_repo, "uat", actor=alice, targets=[{"name": "a"}])
    environments.delete_environment(environment, actor=alice)
    assert not Environment.objects.filter(pk=environment.pk).exists()
    assert list(EnvironmentTarget.objects.values_list("environment", flat=True)) == [other.pk]
    assert not EnvironmentVariable.objects.exists()
    deleted = AuditEvent.objects.get(action="environment.delete")
    assert deleted.before["name"] == "dev" and [t["name"] for t in deleted.before["targets"]] == ["a", "b"]


def test_names_are_unique_whatever_their_case(private_repo, alice):
    environments.set_environment(private_repo, "dev", actor=alice)
    environments.set_environment(private_repo, "uat", actor=alice)
    # The same name in another case is the same environment.
    environment, created, _ = environments.set_environment(private_repo, "DEV", actor=alice, wait_timer=1)
    assert not created and environment.name == "dev"
    assert [e.name for e in environments.environments_of(private_repo)] == ["dev", "uat"]


def test_reviewers_are_people_and_teams_of_the_owner_who_can_read(private_repo, alice, bob, carol, mallory):
    acme = accounts.create_organization(actor=alice, name="acme")
    ops = accounts.create_team(acme, actor=alice, name="ops")
    for member in (bob, carol):
        accounts.add_team_member(ops, member, actor=alice)
    other = accounts.create_organization(actor=mallory, name="other")
    strangers = accounts.create_team(other, actor=mallory, name="ops")
    repo = repo_services.create_repository(actor=alice, owner=acme, name="app", initialize=True)

    team = [{"type": "Team", "id": ops.pk}]
    environment, _, _ = environments.set_environment(repo, "uat", actor=alice, reviewers=team, required_approvals=2)
    assert list(environment.reviewer_teams.all()) == [ops] and environment.required_approvals == 2
    # The team counts two people: three approvals could never be given.
    assert refused_field(lambda: environments.set_environment(repo, "uat", actor=alice, required_approvals=3)) == (
        "required_approvals"
    )
    assert (
        refused_field(
            lambda: environments.set_environment(
                repo, "uat", actor=alice, reviewers=[{"type": "Team", "id": strangers.pk}]
            )
        )
        == "reviewers"
    )
    assert (
        refused_field(
            lambda: environments.set_environment(repo, "uat", actor=alice, reviewers=[{"type": "User", "id": acme.pk}])
        )
        == "reviewers"
    )
    # Somebody who cannot read the private repository could never approve there.
    assert (
        refused_field(
            lambda: environments.set_environment(
                private_repo, "uat", actor=alice, reviewers=[{"type": "User", "id": mallory.pk}]
            )
        )
        == "reviewers"
    )
    environment.refresh_from_db()
    assert list(environment.reviewer_teams.all()) == [ops] and environment.required_approvals == 2
    # Without reviewers no approval can be required.
    assert (
        refused_field(
            lambda: environments.set_environment(repo, "uat", actor=alice, reviewers=[], required_approvals=1)
        )
        == "required_approvals"
    )
    environments.set_environment(repo, "uat", actor=alice, reviewers=[])
    environment.refresh_from_db()
    assert not environment.reviewer_teams.exists() and environment.required_approvals == 0
