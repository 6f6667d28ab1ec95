"""A repository's environments, their targets, variables and secrets: creating, changing and deleting them.

Every setting goes through the validator that a deployment later reads it back with (releases.batches for the
deployment configuration, releases.deploy_checks for approvals, refs, the wait timer and freeze windows,
releases.local_target for names, releases.ssh_target for host keys), and a refusal is a field_error naming the
request's field ("deployment_config", "targets.1.host_key"), which the API answers as a 422.

Only the repository's admins change environments; everything is audited, never with a secret value or a deploy
key's private half. A new ssh target gets a deploy key generated here: its private half is stored encrypted
(releases.secrets) and never shown; its public line is returned once and kept in clear for the host's
authorized_keys."""

import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from portal import audit
from portal.models import Team, User
from portal.validators import field_error
from releases import access, batches, deploy_checks, local_target, secrets, ssh_target, variables
from releases.models import Environment, EnvironmentTarget, EnvironmentVariable
from repos.models import Repository

DEFAULT_ENVIRONMENTS = ("dev", "uat")

# A host name or an IP address (v6 without brackets); never starting with '-', which ssh would read as an option.
HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,253}\Z")
# A POSIX user name.
USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\Z")
MAX_HEALTH_COMMAND = 4096
TARGET_KEYS = {"name", "type", "host", "port", "user", "host_key", "health_check"}
SSH_KEYS = ("host", "port", "user", "host_key")


def _require(actor: User | None, repository: Repository) -> None:
    access.require(
        access.can_configure_environments,
        actor,
        repository,
        "Only the repository's admins change its environments.",
    )


def environments_of(repository: Repository) -> QuerySet:
    """A repository's environments, in promotion order."""
    return Environment.objects.filter(repository=repository).order_by("position", "name")


def find_environment(repository: Repository, name: str) -> Environment | None:
    """The environment of that name, whatever its case, or None."""
    return environments_of(repository).filter(name__iexact=name).first()


def clean_name(name: object, field: str = "name") -> str:
    """An environment's or a target's name: one path component of a local target's directory."""
    try:
        return local_target.check_name(name.strip() if isinstance(name, str) else name, "The name")
    except local_target.LocalTargetError as error:
        raise field_error(str(error), field) from None


# Settings, each checked by the validator a deployment reads it with.


def parse_deployment_config(value: object, field: str = "deployment_config") -> batches.DeploymentConfig:
    """A CodeDeploy configuration: a predefined one's name ("OneAtATime"), {"name": …}, or a minimum of healthy
    hosts {"type": "HOST_COUNT"|"FLEET_PERCENT", "value": N}."""
    if isinstance(value, Mapping) and set(value) == {"name"}:
        value = value["name"]
    if isinstance(value, str):
        if value not in batches.PREDEFINED:
            raise field_error(
                f"{value!r} is not a deployment configuration: choose {', '.join(batches.PREDEFINED)}, or a minimum "
                "of healthy hosts as {type: HOST_COUNT or FLEET_PERCENT, value}.",
                field,
            )
        return batches.PREDEFINED[value]
    if not isinstance(value, Mapping):
        raise field_error("A deployment configuration is a name or {type, value}.", field)
    if value.get("name") in batches.PREDEFINED:
        # A configuration read back from an environment: the predefined one it names.
        config = batches.PREDEFINED[value["name"]]
        if (value.get("type"), value.get("value")) == (str(config.type), config.value):
            return config
    if unknown := sorted(set(value) - {"name", "type", "value"}):
        raise field_error(f"{unknown[0]!r} is not a key of a deployment configuration.", f"{field}.{unknown[0]}")
    try:
        return batches.DeploymentConfig.custom(value.get("type"), value.get("value"))
    except batches.DeploymentConfigError as error:
        raise field_error(str(error), field) from None


def _config_json(config: batches.DeploymentConfig) -> dict:
    return {"name": config.name, "type": str(config.type), "value": config.value}


def config_of(environment: Environment) -> batches.DeploymentConfig:
    """The environment's deployment configuration, as releases.batches computes with it."""
    return parse_deployment_config(environment.deployment_config)


def ref_policy_of(environment: Environment) -> deploy_checks.RefPolicy:
    """Which refs may deploy to the environment."""
    return deploy_checks.ref_policy(**environment.ref_policy)


def freeze_windows_of(environment: Environment) -> list[deploy_checks.Window]:
    return deploy_checks.windows(environment.freeze_windows)


def _ref_policy(value: object, field: str = "deployment_branch_policy") -> dict:
    """The policy as deploy_checks.ref_policy's keyword arguments; None is GitHub's null policy (any ref)."""
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise field_error("A deployment branch policy is an object, or null for any branch.", field)
    if unknown := sorted(set(value) - {"default_branch", "protected_branches", "patterns"}, key=str):
        raise field_error(f"{unknown[0]!r} is not a key of a deployment branch policy.", f"{field}.{unknown[0]}")
    for key in ("default_branch", "protected_branches"):
        if not isinstance(value.get(key, False), bool):
            raise field_error(f"{key} is true or false.", f"{field}.{key}")
    patterns = value.get("patterns", [])
    if isinstance(patterns, str | bytes | Mapping) or not isinstance(patterns, Iterable):
        raise field_error("Patterns are a list such as [branch:release/*, tag:v*].", f"{field}.patterns")
    policy = deploy_checks.ref_policy(
        default_branch=value.get("default_branch", False),
        protected_branches=value.get("protected_branches", False),
        patterns=patterns,
        field=field,
    )
    return {
        "default_branch": policy.default_branch,
        "protected_branches": policy.protected_branches,
        "patterns": list(policy.patterns),
    }


def _freeze_windows(value: object, field: str = "freeze_windows") -> list:
    if value is None:
        return []
    checked = deploy_checks.windows(value, field=field)
    # Kept as given (they are valid), with a dated window's moments as text so that the JSON column takes them.
    kept = []
    for data, parsed in zip(value, checked, strict=True):
        row = {key: data[key] for key in data}
        if isinstance(parsed, deploy_checks.DateWindow):
            row["start"], row["end"] = parsed.start.isoformat(), parsed.end.isoformat()
        kept.append(row)
    return kept


def _reviewers(value: object, field: str = "reviewers") -> tuple[list[User], list[Team]]:
    """GitHub's reviewers, [{type: "User"|"Team", id}], as the users and teams they name."""
    if value is None:
        return [], []
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise field_error("Reviewers are a list of {type: User or Team, id}.", field)
    users, teams = [], []
    for index, item in enumerate(value):
        where = f"{field}.{index}"
        if not isinstance(item, Mapping) or item.get("type") not in ("User", "Team"):
            raise field_error("A reviewer is {type: User or Team, id}.", f"{where}.type")
        pk = item.get("id")
        if not isinstance(pk, int) or isinstance(pk, bool):
            raise field_error("A reviewer's id is a number.", f"{where}.id")
        model, found = (User, users) if item["type"] == "User" else (Team, teams)
        row = model.objects.filter(pk=pk).first()
        if row is None or (model is User and not row.is_active):
            raise field_error(f"There is no {item['type'].lower()} with the id {pk}.", f"{where}.id")
        if row not in found:
            found.append(row)
    return users, teams


def _health_check(value: object, field: str) -> tuple[str, str]:
    """(command, url) from a target's health_check: an http(s) URL, or else a command run on the target."""
    if value in (None, ""):
        return "", ""
    if not isinstance(value, str) or "\x00" in value or len(value) > MAX_HEALTH_COMMAND:
        raise field_error(f"A health check is a command or an HTTP URL of at most {MAX_HEALTH_COMMAND} chars.", field)
    value = value.strip()
    if value.lower().startswith(("http://", "https://")):
        parts = urlsplit(value)
        if not parts.hostname or any(char.isspace() for char in value) or len(value) > 500:
            raise field_error(f"{value!r} is not an HTTP URL such as https://host/health.", field)
        return "", value
    return value, ""


def _target(data: object, index: int, field: str = "targets") -> dict:
    """One target's settings, checked: local takes a name (and a health check), ssh also host, port, user and the
    host key line."""
    where = f"{field}.{index}"
    if not isinstance(data, Mapping):
        raise field_error("A target is {name, type: local} or {name, type: ssh, host, port, user, host_key}.", where)
    if unknown := sorted(set(data) - TARGET_KEYS, key=str):
        raise field_error(f"{unknown[0]!r} is not a key of a target.", f"{where}.{unknown[0]}")
    kind = data.get("type", EnvironmentTarget.Kind.LOCAL)
    if kind not in EnvironmentTarget.Kind.values:
        raise field_error("A target's type is local or ssh.", f"{where}.type")
    command, url = _health_check(data.get("health_check"), f"{where}.health_check")
    target = {
        "name": clean_name(data.get("name"), f"{where}.name"),
        "kind": kind,
        "host": "",
        "port": None,
        "user": "",
        "host_key": "",
        "health_command": command,
        "health_url": url,
    }
    if kind == EnvironmentTarget.Kind.LOCAL:
        if given := next((key for key in SSH_KEYS if data.get(key) not in (None, "")), None):
            raise field_error(
                "A local target is a directory on the portal's host: it takes no " + given + ".", f"{where}.{given}"
            )
        return target
    for key in SSH_KEYS:
        if data.get(key) in (None, ""):
            raise field_error(f"An ssh target needs its {key}.", f"{where}.{key}")
    host, port, user = data["host"], data["port"], data["user"]
    if not isinstance(host, str) or not HOST.match(host.strip()):
        raise field_error(f"{host!r} is not a host name or IP address.", f"{where}.host")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise field_error("A port is a number from 1 to 65535.", f"{where}.port")
    if not isinstance(user, str) or not USER.match(user.strip()):
        raise field_error(f"{user!r} is not a user name.", f"{where}.user")
    try:
        key = ssh_target.parse_host_key(str(data["host_key"]))
    except ssh_target.SshTargetError as error:
        raise field_error(str(error), f"{where}.host_key") from None
    target.update(
        host=host.strip(),
        port=port,
        user=user.strip(),
        # The key alone, as ssh prints it: what a connection compares the host's key with.
        host_key=" ".join(key.export_public_key("openssh").decode().split()[:2]),
    )
    return target


def _targets(value: object, field: str = "targets") -> list[dict]:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise field_error("Targets are a list.", field)
    checked, seen = [], set()
    for index, data in enumerate(value):
        target = _target(data, index, field)
        if target["name"].lower() in seen:
            raise field_error(f"There is already a target named {target['name']}.", f"{field}.{index}.name")
        seen.add(target["name"].lower())
        checked.append(target)
    return checked


def _fits(config: batches.DeploymentConfig, target_count: int) -> None:
    """Refuse a configuration that leaves the environment's targets none to deploy to (95% of 10, HOST_COUNT 3 of
    3), now rather than at every deployment; an environment without targets yet is fine."""
    if target_count:
        try:
            config.check(target_count)
        except batches.DeploymentConfigError as error:
            raise field_error(str(error), "deployment_config") from None


# Auditing: what changed, never a secret.


def describe(environment: Environment) -> dict:
    """An environment's settings as audit events (and pages) show them: no secret, no private key."""
    return {
        "repository": environment.repository.full_name,
        "name": environment.name,
        "position": environment.position,
        "deployment_config": environment.deployment_config,
        "required_approvals": environment.required_approvals,
        "reviewers": [{"type": "User", "id": pk} for pk in environment.reviewer_users.values_list("pk", flat=True)]
        + [{"type": "Team", "id": pk} for pk in environment.reviewer_teams.values_list("pk", flat=True)],
        "prevent_self_review": environment.prevent_self_review,
        "deployment_branch_policy": environment.ref_policy,
        "wait_timer": environment.wait_timer,
        "freeze_windows": environment.freeze_windows,
        "targets": [_describe_target(target) for target in environment.targets.all()],
    }


def _describe_target(target: EnvironmentTarget) -> dict:
    described = {"name": target.name, "type": target.kind}
    if target.kind == EnvironmentTarget.Kind.SSH:
        described.update(
            host=target.host,
            port=target.port,
            user=target.user,
            host_key=ssh_target.fingerprint(target.host_key),
            deploy_key=ssh_target.fingerprint(target.deploy_key_public),
        )
    if target.health_command or target.health_url:
        described["health_check"] = target.health_command or target.health_url
    return described


# Services.

UNSET = object()


@transaction.atomic
def set_environment(
    repository: Repository,
    name: str,
    *,
    actor: User | None,
    deployment_config: object = UNSET,
    required_approvals: object = UNSET,
    reviewers: object = UNSET,
    prevent_self_review: object = UNSET,
    deployment_branch_policy: object = UNSET,
    wait_timer: object = UNSET,
    freeze_windows: object = UNSET,
    targets: object = UNSET,
) -> tuple[Environment, bool, dict[str, str]]:
    """Create the environment of that name (whatever its case) or change it, as GitHub's PUT does (a name is
    never changed: it names the local targets' directories): settings left
    out keep their value (or take their default on creation). Returns the environment, whether it was created, and
    the public lines of the deploy keys generated for new ssh targets, by target name.

    Everything is checked before anything is written, so a refusal changes nothing."""
    _require(actor, repository)
    name = clean_name(name)
    environment = find_environment(repository, name)
    created = environment is None
    before = None if created else describe(environment)
    if created:
        last = environments_of(repository).order_by("-position").first()
        environment = Environment(repository=repository, name=name, position=0 if last is None else last.position + 1)

    if deployment_config is not UNSET:
        environment.deployment_config = _config_json(parse_deployment_config(deployment_config))
    if reviewers is not UNSET:
        users, teams = _reviewers(reviewers)
    elif created:
        users, teams = [], []
    else:
        users, teams = list(environment.reviewer_users.all()), list(environment.reviewer_teams.all())
    count = environment.required_approvals if required_approvals is UNSET else required_approvals
    if users or teams:
        # Reviewers named without a number of approvals want one of them, as on GitHub.
        count = count or 1 if required_approvals is UNSET else count
        deploy_checks.required_approvals(count, users, teams, repository=repository)
    elif required_approvals is UNSET:
        # Reviewers taken away take their approvals with them.
        count = 0
    elif count not in (0, None):
        raise field_error("Approvals are required of reviewers: name them first.", "required_approvals")
    environment.required_approvals = count or 0
    if prevent_self_review is not UNSET:
        if not isinstance(prevent_self_review, bool):
            raise field_error("prevent_self_review is true or false.", "prevent_self_review")
        environment.prevent_self_review = prevent_self_review
    if deployment_branch_policy is not UNSET:
        environment.ref_policy = _ref_policy(deployment_branch_policy)
    if wait_timer is not UNSET:
        environment.wait_timer = deploy_checks.wait_timer(wait_timer)
    if freeze_windows is not UNSET:
        environment.freeze_windows = _freeze_windows(freeze_windows)
    checked_targets = None if targets is UNSET else _targets(targets)
    target_count = (
        len(checked_targets) if checked_targets is not None else (0 if created else environment.targets.count())
    )
    _fits(config_of(environment), target_count)

    environment.updated = timezone.now()
    environment.save()
    environment.reviewer_users.set(users)
    environment.reviewer_teams.set(teams)
    new_keys = {} if checked_targets is None else _replace_targets(environment, checked_targets)
    audit.record(
        actor,
        f"environment.{'create' if created else 'update'}",
        environment,
        before=before,
        after=describe(environment),
    )
    return environment, created, new_keys


def _replace_targets(environment: Environment, checked: list[dict]) -> dict[str, str]:
    """Make the environment's targets the checked list; a target keeping its name keeps its row and, while it
    stays ssh, its deploy key. Returns the public lines of the keys generated, by target name."""
    existing = {target.name.lower(): target for target in environment.targets.all()}
    keep = {data["name"].lower() for data in checked}
    for lowered, target in existing.items():
        if lowered not in keep:
            target.delete()
    new_keys = {}
    now = timezone.now()
    for position, data in enumerate(checked):
        target = existing.get(data["name"].lower()) or EnvironmentTarget(environment=environment, created=now)
        for key, value in data.items():
            setattr(target, key, value)
        target.position = position
        target.updated = now
        if target.kind == EnvironmentTarget.Kind.SSH and not target.deploy_key_private:
            comment = f"portal {environment.repository.full_name} {environment.name} {target.name}"
            private, public = ssh_target.generate_deploy_key(comment)
            target.deploy_key_private, target.deploy_key_public = secrets.encrypt(private), public
            new_keys[target.name] = public
        elif target.kind == EnvironmentTarget.Kind.LOCAL:
            target.deploy_key_private = target.deploy_key_public = ""
        target.save()
    return new_keys


def set_targets(environment: Environment, targets: object, *, actor: User | None) -> dict[str, str]:
    """Replace the environment's targets (see set_environment); returns the new deploy keys' public lines."""
    return set_environment(environment.repository, environment.name, actor=actor, targets=targets)[2]


def deploy_key_of(target: EnvironmentTarget) -> str:
    """The private half of an ssh target's deploy key, for the deployment job's connection only."""
    return secrets.decrypt(target.deploy_key_private)


@transaction.atomic
def delete_environment(environment: Environment, *, actor: User | None) -> None:
    """Remove an environment with its targets, variables and secrets."""
    _require(actor, environment.repository)
    audit.record(actor, "environment.delete", environment, before=describe(environment))
    environment.delete()


@transaction.atomic
def ensure_default_environments(repository: Repository, *, actor: User | None = None) -> list[Environment]:
    """Give a repository without environments the defaults, dev then uat; one that has any keeps what it has."""
    if environments_of(repository).exists():
        return list(environments_of(repository))
    made = []
    for position, name in enumerate(DEFAULT_ENVIRONMENTS):
        environment = Environment.objects.create(repository=repository, name=name, position=position)
        audit.record(actor, "environment.create", environment, after=describe(environment))
        made.append(environment)
    return made


# Variables and secrets, with the rules of build variables (releases.variables).


def _kind(secret: bool) -> str:
    return "environment_secret" if secret else "environment_variable"


def _describe_variable(row: EnvironmentVariable) -> dict:
    return {"name": row.name, "environment": row.environment.name, "repository": row.environment.repository.full_name}


def find_variable(environment: Environment, name: str, *, secret: bool) -> EnvironmentVariable | None:
    return environment.variables.filter(secret=secret, name__iexact=name).first()


@transaction.atomic
def set_variable(
    environment: Environment,
    name: str,
    value: str,
    *,
    secret: bool,
    actor: User | None,
    name_field: str = "name",
    value_field: str = "value",
) -> tuple[EnvironmentVariable, bool]:
    """Create a variable or secret of the environment, or give the one of that name (whatever its case) a new
    value; returns it and whether it was created. Audited without the value."""
    _require(actor, environment.repository)
    name = variables.clean_name(name, name_field)
    value = variables.clean_value(value, value_field)
    row = find_variable(environment, name, secret=secret)
    created = row is None
    now = timezone.now()
    if created:
        row = EnvironmentVariable(environment=environment, name=name, secret=secret, created=now)
    row.value = secrets.encrypt(value) if secret else value
    row.updated = now
    row.save()
    audit.record(actor, f"{_kind(secret)}.{'create' if created else 'update'}", row, after=_describe_variable(row))
    return row, created


@transaction.atomic
def delete_variable(row: EnvironmentVariable, *, actor: User | None) -> None:
    _require(actor, row.environment.repository)
    audit.record(actor, f"{_kind(row.secret)}.delete", row, before=_describe_variable(row))
    row.delete()
